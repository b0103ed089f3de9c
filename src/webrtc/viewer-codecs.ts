import { parseProfileLevelId } from 'h264-profile-level-id';
import { describeCodec, SdpError, sectionName, type IgnoredMedia, type OfferedCodec } from '../sdp/offer.js';
import type { ParsedViewerOffer } from '../sdp/viewer-offer.js';
import type { ChosenCodec } from './codec-policy.js';

// What a WHEP viewer gets of a stream, section by section of its offer: one of the
// stream's tracks whose codec the viewer can receive, sent as it is (no transcoding for a
// viewer). Video: the publisher's own (H.264 as sent; VP8/VP9 as sent when the viewer
// offers it), else a track the gateway makes itself (the H.264 transcoded from VP8/VP9,
// a composite's picture). Audio: the publisher's Opus (or G.711) as sent, else one of the
// gateway's own tracks in a codec the viewer takes (never AAC: no browser receives it).
//
// H.264 goes only to a payload type with packetization-mode=1 (the gateway forwards FU-A
// and STAP-A packets), preferably with the stream's own profile. RTX, RED and FEC are not
// taken: a lost packet is sent again as itself (RFC 4585 NACK on the media SSRC).

/** A track of the stream in its media worker: its index there, its codec, whether the gateway makes it. */
export interface StreamTrack {
  track: number;
  codec: ChosenCodec;
  local: boolean;
}

export interface ViewerChoice {
  /** The stream track sent in this section (its index in the media worker). */
  track: number;
  /** The codec as the viewer names it (its payload type and fmtp), for the answer; `index` and `mid` are the viewer's section. */
  codec: ChosenCodec;
}

export interface ViewerCodecs {
  chosen: ViewerChoice[];
  /** Sections of the offer answered with port 0, and why. */
  ignored: IgnoredMedia[];
}

/** How well an offered codec fits a track's packets; lower is better, undefined = it cannot carry them. */
export function fit(track: ChosenCodec, offered: OfferedCodec): number | undefined {
  if (offered.name.toLowerCase() !== track.name.toLowerCase() || offered.clockRate !== track.clockRate) return undefined;
  if (track.name === 'H264') {
    if (offered.fmtp['packetization-mode'] !== '1') return undefined;
    const mine = (track.fmtp['profile-level-id'] ?? '42e01f').toLowerCase();
    const theirs = (offered.fmtp['profile-level-id'] ?? '42001f').toLowerCase();
    if (mine === theirs) return 0;
    const [a, b] = [parseProfileLevelId(mine), parseProfileLevelId(theirs)];
    return a && b && a.profile === b.profile ? 1 : 2;
  }
  if (track.name === 'VP9' && (offered.fmtp['profile-id'] ?? '0') !== (track.fmtp['profile-id'] ?? '0')) return undefined;
  return 0;
}

/** Chooses a track and payload type per receiving section; throws SdpError 406 when the viewer can receive none. */
export function chooseViewerCodecs(offer: ParsedViewerOffer, tracks: StreamTrack[]): ViewerCodecs {
  const chosen: ViewerChoice[] = [];
  const ignored: IgnoredMedia[] = [];
  // The publisher's own tracks first: as sent, no later than they arrive.
  const ordered = [...tracks].sort((a, b) => Number(a.local) - Number(b.local));
  for (const m of offer.receiving) {
    const ofKind = ordered.filter((t) => t.codec.kind === m.kind && t.codec.name !== 'AAC');
    const free = ofKind.filter((t) => !chosen.some((c) => c.track === t.track));
    let best: { t: StreamTrack; offered: OfferedCodec; rank: number } | undefined;
    for (const t of free) {
      for (const offered of m.codecs) {
        const rank = fit(t.codec, offered);
        if (rank !== undefined && (!best || (best.t === t && rank < best.rank))) best = { t, offered, rank };
      }
      if (best) break;
    }
    if (!best) {
      const has = ofKind.map((t) => t.codec.name).join(', ');
      const reason = !has
        ? `the stream has no ${m.kind}`
        : free.length === 0
          ? `a second ${m.kind} section: the stream's ${m.kind} goes in the first`
          : `the stream's ${m.kind} is ${has}; this section receives ${[...new Set(m.codecs.map(describeCodec))].join(', ') || 'nothing'}`;
      ignored.push({ index: m.index, mid: m.mid, kind: m.kind, reason });
      continue;
    }
    const { t, offered } = best;
    chosen.push({
      track: t.track,
      codec: {
        kind: m.kind,
        index: m.index,
        mid: m.mid,
        name: t.codec.name,
        payloadType: offered.payloadType,
        clockRate: offered.clockRate,
        channels: t.codec.name === 'opus' ? 2 : 1,
        fmtp: offered.fmtp,
      },
    });
  }
  if (chosen.length === 0) throw new SdpError(406, `nothing in the offer can receive this stream: ${ignored.map((i) => `${sectionName(i)}: ${i.reason}`).join('; ')}`);
  return { chosen, ignored };
}
