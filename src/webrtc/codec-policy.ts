import { parseProfileLevelId, Profile } from 'h264-profile-level-id';
import type { SessionDescription } from 'sdp-transform';
import { describeCodec, isPrimaryCodec, SdpError, sectionName, type IgnoredMedia, type MediaKind, type OfferedCodec, type ParsedOffer } from '../sdp/offer.js';

// Which codec the gateway takes from each offered m-section. werift's answer takes the
// first offered codec whose MIME type matches, whatever its fmtp (packetization-mode=0,
// High profile...), so the policy picks exactly one primary codec per section here and
// the offer handed to werift lists only that codec (and its RTX). The negotiation is
// then deterministic, and ffmpeg's session SDP is known the moment the answer is sent.
//
// Video: H.264 packetization-mode=1 whenever it is offered (ffmpeg copies it into HLS/TS
// untouched), preferring Constrained Baseline 42e01f (RFC 7742), then other constrained
// baseline, baseline, main, high; without usable H.264, VP8, then VP9 profile 0, which
// the gateway transcodes to H.264 once per stream. Audio: the publisher's first choice
// among Opus, PCMU, PCMA.
//
// One track of each kind is taken: a section with no acceptable codec, or a second
// section of a kind already taken (the outputs use one video and one audio track), is
// left out of the session (answered with port 0) and named, rather than refusing a whole
// offer of which another section is usable. Only an offer with nothing usable gets 406.

export const ACCEPTED = {
  video: ['H264 (packetization-mode=1)', 'VP8', 'VP9 (profile 0; both transcoded to H.264)'],
  audio: ['opus/48000/2', 'PCMU/8000', 'PCMA/8000'],
} as const;

export interface ChosenCodec {
  kind: MediaKind;
  /** Offer m-section index. */
  index: number;
  mid?: string;
  /** Normalised name: H264, VP8, VP9, opus, PCMU, PCMA (from publishers); AAC (the gateway's own shared encode). */
  name: 'H264' | 'VP8' | 'VP9' | 'opus' | 'PCMU' | 'PCMA' | 'AAC';
  payloadType: number;
  clockRate: number;
  channels: number;
  fmtp: Record<string, string>;
  /** RTX payload type bound to this codec, if offered. */
  rtxPayloadType?: number;
}

/** Video the gateway transcodes to H.264 for its outputs (outputs/shared-h264.ts). */
export function isTranscoded(c: Pick<ChosenCodec, 'name'>): boolean {
  return c.name === 'VP8' || c.name === 'VP9';
}

/** Profiles in the order the gateway prefers them: what every decoder and HLS player takes first. */
const PROFILE_RANK: Partial<Record<Profile, number>> = {
  [Profile.ConstrainedBaseline]: 1,
  [Profile.Baseline]: 2,
  [Profile.Main]: 3,
  [Profile.ConstrainedHigh]: 4,
  [Profile.High]: 4,
};

/**
 * Lower is better; undefined = not acceptable. 42e01f (Constrained Baseline 3.1, what
 * every browser offers) first; then by profile as RFC 6184 defines it from profile_idc and
 * the constraint flags (h264-profile-level-id, as mediasoup uses): a Baseline or Main
 * profile_idc with the flags that make it Constrained Baseline counts as that.
 */
export function h264Rank(c: OfferedCodec): number | undefined {
  if (c.name.toUpperCase() !== 'H264' || c.clockRate !== 90000) return undefined;
  if (c.fmtp['packetization-mode'] !== '1') return undefined;
  const pli = (c.fmtp['profile-level-id'] ?? '42e01f').toLowerCase();
  if (pli === '42e01f') return 0;
  const parsed = parseProfileLevelId(pli);
  return parsed ? (PROFILE_RANK[parsed.profile] ?? 5) : 5;
}

function vpxPick(codecs: OfferedCodec[]): { codec: OfferedCodec; name: 'VP8' | 'VP9' } | undefined {
  const vp8 = codecs.find((c) => c.name.toUpperCase() === 'VP8' && c.clockRate === 90000);
  if (vp8) return { codec: vp8, name: 'VP8' };
  const vp9 = codecs.find((c) => c.name.toUpperCase() === 'VP9' && c.clockRate === 90000 && (c.fmtp['profile-id'] ?? '0') === '0');
  return vp9 ? { codec: vp9, name: 'VP9' } : undefined;
}

function audioName(c: OfferedCodec): ChosenCodec['name'] | undefined {
  const n = c.name.toLowerCase();
  if (n === 'opus' && c.clockRate === 48000) return 'opus';
  if (n === 'pcmu' && c.clockRate === 8000) return 'PCMU';
  if (n === 'pcma' && c.clockRate === 8000) return 'PCMA';
  return undefined;
}

export interface CodecChoice {
  /** One codec per section the gateway takes, in offer order. */
  tracks: ChosenCodec[];
  /** Every section that sends but is left out (the offer's own port-0 sections too), in offer order. */
  ignored: IgnoredMedia[];
}

/** Picks one codec per sending m-section; throws SdpError 406 naming what was offered when no section is usable. */
export function chooseCodecs(offer: ParsedOffer): CodecChoice {
  const tracks: ChosenCodec[] = [];
  const ignored: IgnoredMedia[] = [...offer.ignored];
  const unusable: string[] = [];
  for (const m of offer.sending) {
    const primaries = m.codecs.filter((c) => isPrimaryCodec(c.name));
    let pick: { codec: OfferedCodec; name: ChosenCodec['name'] } | undefined;
    if (m.kind === 'video') {
      const ranked = primaries
        .map((codec) => ({ codec, rank: h264Rank(codec) }))
        .filter((r): r is { codec: OfferedCodec; rank: number } => r.rank !== undefined)
        .sort((a, b) => a.rank - b.rank);
      if (ranked[0]) pick = { codec: ranked[0].codec, name: 'H264' };
      // No usable H.264: VP8, then VP9 profile 0, which the gateway transcodes to H.264
      // once per stream (outputs/shared-h264.ts). H.264, when offered, is always taken and copied.
      else pick = vpxPick(primaries);
    } else {
      for (const codec of primaries) {
        const name = audioName(codec);
        if (name) {
          pick = { codec, name };
          break;
        }
      }
    }
    if (!pick) {
      const offered = [...new Set(primaries.map(describeCodec))].join(', ') || 'nothing';
      const reason = `no acceptable ${m.kind} codec: offered ${offered}; accepted ${ACCEPTED[m.kind].join(', ')}`;
      unusable.push(reason);
      ignored.push({ index: m.index, mid: m.mid, kind: m.kind, reason });
      continue;
    }
    const taken = tracks.find((t) => t.kind === m.kind);
    if (taken) {
      ignored.push({ index: m.index, mid: m.mid, kind: m.kind, reason: `a second ${m.kind} section: the outputs take one ${m.kind} track, from ${sectionName(taken)}` });
      continue;
    }
    const rtx = m.codecs.find((c) => c.name.toLowerCase() === 'rtx' && c.fmtp.apt === String(pick.codec.payloadType));
    tracks.push({
      kind: m.kind,
      index: m.index,
      mid: m.mid,
      name: pick.name,
      payloadType: pick.codec.payloadType,
      clockRate: pick.codec.clockRate,
      channels: pick.name === 'opus' ? opusChannels(pick.codec) : 1,
      fmtp: pick.codec.fmtp,
      rtxPayloadType: rtx?.payloadType,
    });
  }
  if (tracks.length === 0) throw new SdpError(406, unusable.join('; '));
  return { tracks, ignored: ignored.sort((a, b) => a.index - b.index) };
}

/** Opus is always "opus/48000/2" in SDP; whether the sender sends stereo is sprop-stereo. */
function opusChannels(c: OfferedCodec): number {
  return c.fmtp['sprop-stereo'] === '1' ? 2 : 1;
}

/**
 * A copy of the offer that lists only the chosen payload types (and their RTX) in each
 * sending m-section, and rejects (port 0, out of the BUNDLE group) every section left
 * out, for werift to answer. Other sections are left as they are.
 *
 * transport-cc feedback is taken out: werift negotiates the offer's own codec entries, and
 * starts its (wrong) transport-cc generator for any whose offer lists transport-cc. The
 * gateway sends that feedback itself and writes transport-cc into the answer
 * (sdp/answer.ts).
 */
export function restrictOffer(sdp: SessionDescription, chosen: ChosenCodec[], ignored: IgnoredMedia[] = []): SessionDescription {
  const copy = structuredClone(sdp);
  for (const c of chosen) {
    const m = copy.media[c.index];
    const keep = new Set([c.payloadType, ...(c.rtxPayloadType !== undefined ? [c.rtxPayloadType] : [])]);
    m.rtp = m.rtp.filter((r) => keep.has(r.payload));
    m.fmtp = m.fmtp.filter((f) => keep.has(f.payload));
    m.rtcpFb = m.rtcpFb?.filter((f) => (f.payload === '*' || keep.has(Number(f.payload))) && f.type !== 'transport-cc');
    m.payloads = [...keep].join(' ');
  }
  rejectSections(copy, ignored.map((i) => i.index));
  return copy;
}

/**
 * Sections werift is to answer as rejected: port 0 (werift then answers port 0 and
 * a=inactive) and out of the BUNDLE group. When one was the group's first section (the
 * tag, whose transport werift takes), the candidates it carried move to the new first.
 */
function rejectSections(sdp: SessionDescription, indexes: number[]): void {
  if (indexes.length === 0) return;
  const rejected = new Set(indexes.map((i) => sdp.media[i]).filter((m) => m !== undefined));
  const mids = new Set([...rejected].flatMap((m) => (m.mid === undefined ? [] : [String(m.mid)])));
  for (const group of (sdp.groups ?? []).filter((g) => g.type === 'BUNDLE')) {
    const before = String(group.mids).split(/\s+/).filter(Boolean);
    const after = before.filter((mid) => !mids.has(mid));
    group.mids = after.join(' ');
    const oldTag = sdp.media.find((m) => String(m.mid) === before[0]);
    const newTag = sdp.media.find((m) => String(m.mid) === after[0]);
    if (oldTag && newTag && oldTag !== newTag && !newTag.candidates?.length && oldTag.candidates?.length) {
      newTag.candidates = oldTag.candidates;
      if (oldTag.endOfCandidates) newTag.endOfCandidates = oldTag.endOfCandidates;
    }
  }
  sdp.groups = (sdp.groups ?? []).filter((g) => g.type !== 'BUNDLE' || String(g.mids).trim() !== '');
  for (const m of rejected) {
    m.port = 0;
    delete m.bundleOnly;
    delete m.candidates;
    delete m.endOfCandidates;
  }
}
