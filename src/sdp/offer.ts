import * as sdpTransform from 'sdp-transform';
import type { z } from 'zod';
import { acceptBundleOnly } from './bundle-only.js';
import type { candidateAddress, ignoredMedia } from './offer-shapes.js';

// Reading a publisher's SDP offer: parse, check it can be answered, and list what each
// m-section offers. Every problem becomes an SdpError with the HTTP status a WHIP
// client should see and a one-line message naming the problem.
//
// Limits: answering costs the gateway per m-section and per candidate (werift binds a
// socket for each unbundled section and checks every candidate), and one offer with 400
// unbundled sections once blocked the event loop for 3 s and took 400 UDP ports. A
// publisher needs one audio and one video section, bundled on one transport, as every
// browser and WHIP client sends them.

/** Most m-sections an offer may have (audio, video, a data channel, and room for a screen). */
export const MAX_SECTIONS = 8;
/** Most ICE candidates an offer may carry (a host with many interfaces gathers ~20). */
export const MAX_CANDIDATES = 64;

export class SdpError extends Error {
  constructor(
    readonly status: 400 | 406,
    message: string,
  ) {
    super(message);
  }
}

export type MediaKind = 'audio' | 'video';

export interface OfferedCodec {
  payloadType: number;
  /** Encoding name as written (H264, opus, PCMU...). */
  name: string;
  clockRate: number;
  channels?: number;
  fmtp: Record<string, string>;
  rtcpFeedback: string[];
}

export interface OfferedMedia {
  /** Position of the m-section in the offer. */
  index: number;
  kind: MediaKind;
  mid?: string;
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
  codecs: OfferedCodec[];
}

/** An m-section left out of the session, and why (see offer-shapes.ts). */
export type IgnoredMedia = z.infer<typeof ignoredMedia>;

export interface ParsedOffer {
  sdp: sdpTransform.SessionDescription;
  /** audio and video m-sections that send media (port not 0, direction sends). */
  sending: OfferedMedia[];
  /** Sections that would send but cannot be taken (port 0 without a bundle to join). */
  ignored: IgnoredMedia[];
}

export function parseFmtp(config: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (config ?? '').split(';')) {
    const [k, ...rest] = part.trim().split('=');
    if (k) out[k.toLowerCase()] = rest.join('=').trim();
  }
  return out;
}

export function mediaCodecs(m: sdpTransform.MediaDescription): OfferedCodec[] {
  return m.rtp.map((r) => ({
    payloadType: r.payload,
    name: r.codec,
    clockRate: r.rate ?? 0,
    channels: r.encoding ? Number(r.encoding) : undefined,
    fmtp: parseFmtp(m.fmtp.find((f) => f.payload === r.payload)?.config),
    rtcpFeedback: (m.rtcpFb ?? [])
      .filter((f) => String(f.payload) === String(r.payload) || f.payload === '*')
      .map((f) => (f.subtype ? `${f.type} ${f.subtype}` : f.type)),
  }));
}

/**
 * An offer's text parsed, within the limits every offer has (a publisher's or a viewer's).
 * Throws SdpError (400) naming the first problem found.
 */
export function parseSdp(text: string): sdpTransform.SessionDescription {
  if (!/^v=0\r?\n/.test(text.trimStart())) throw new SdpError(400, 'body is not an SDP offer (must start with "v=0")');
  // Counted before parsing: parsing 400 sections takes 15-25 ms of the event loop.
  const sections = text.match(/^m=/gm)?.length ?? 0;
  if (sections > MAX_SECTIONS) throw new SdpError(400, `SDP offer has ${sections} m= sections; at most ${MAX_SECTIONS} are accepted`);
  const candidates = text.match(/^a=candidate:/gm)?.length ?? 0;
  if (candidates > MAX_CANDIDATES) throw new SdpError(400, `SDP offer carries ${candidates} ICE candidates; at most ${MAX_CANDIDATES} are accepted`);
  let sdp: sdpTransform.SessionDescription;
  try {
    sdp = sdpTransform.parse(text);
  } catch (e) {
    throw new SdpError(400, `unparseable SDP: ${(e as Error).message}`);
  }
  if (!sdp.media || sdp.media.length === 0) throw new SdpError(400, 'SDP offer has no m= sections');
  return sdp;
}

/** Parses and checks an offer. Throws SdpError (400) naming the first problem found. */
export function parseOffer(text: string): ParsedOffer {
  const sdp = parseSdp(text);
  // Before anything reads a port: bundle-only sections (port 0) join their bundle.
  const bundleOnly = acceptBundleOnly(sdp);
  const av = sdp.media
    .map((m, index) => ({ m, index }))
    .filter(({ m }) => m.type === 'audio' || m.type === 'video');
  if (av.length === 0) throw new SdpError(400, 'SDP offer has no audio or video section');
  const sending: OfferedMedia[] = [];
  const ignored: IgnoredMedia[] = [];
  for (const { m, index } of av) {
    if (!m.rtp || m.rtp.length === 0 || !m.protocol.includes('RTP')) {
      throw new SdpError(400, `m-section ${index} (${m.type}) lists no RTP payload types`);
    }
    const direction = m.direction ?? sdp.direction ?? 'sendrecv';
    const mid = m.mid === undefined ? undefined : String(m.mid);
    if (m.port === 0) {
      // Port 0 in an offer disables the section (RFC 3264 §8.2), unless it is bundle-only
      // (taken into its bundle above). Its transport attributes do not matter.
      if (direction === 'recvonly' || direction === 'inactive') continue;
      const reason = bundleOnly.refused.find((r) => r.index === index)?.reason ?? 'port 0 without a=bundle-only: the publisher disabled this section';
      ignored.push({ index, mid, kind: m.type, reason });
      continue;
    }
    const ufrag = m.iceUfrag ?? sdp.iceUfrag;
    const pwd = m.icePwd ?? sdp.icePwd;
    if (!ufrag || !pwd) throw new SdpError(400, `m-section ${index} (${m.type}) has no ice-ufrag/ice-pwd`);
    if (!(m.fingerprint ?? sdp.fingerprint)) throw new SdpError(400, `m-section ${index} (${m.type}) has no DTLS fingerprint`);
    if (direction === 'recvonly' || direction === 'inactive') continue;
    sending.push({ index, kind: m.type as MediaKind, mid, direction, codecs: mediaCodecs(m) });
  }
  if (sending.length === 0) {
    const why = ignored.length ? `: ${ignored.map((i) => `${sectionName(i)}: ${i.reason}`).join('; ')}` : '';
    throw new SdpError(400, `SDP offer does not send any audio or video (all sections are recvonly, inactive or disabled)${why}`);
  }
  checkBundled(sdp);
  return { sdp, sending, ignored };
}

/**
 * Every section that is not disabled must share one transport (BUNDLE, RFC 8843), so a
 * publisher costs one ICE/DTLS transport and one UDP port however many sections it has.
 */
export function checkBundled(sdp: sdpTransform.SessionDescription): void {
  const active = sdp.media.filter((m) => m.port !== 0);
  if (active.length <= 1) return;
  const bundle = (sdp.groups ?? []).find((g) => g.type === 'BUNDLE');
  const mids = new Set(String(bundle?.mids ?? '').split(/\s+/).filter(Boolean));
  const outside = active.filter((m) => m.mid === undefined || !mids.has(String(m.mid)));
  if (outside.length > 0) {
    throw new SdpError(400, `SDP offer must bundle its sections on one transport (a=group:BUNDLE with every mid); ${outside.map((m) => `${m.type}${m.mid !== undefined ? ` (mid ${m.mid})` : ''}`).join(', ')} not bundled`);
  }
}

/** "audio (mid 1)": how messages name an m-section. */
export function sectionName(m: { kind: string; mid?: string }): string {
  return m.mid !== undefined ? `${m.kind} (mid ${m.mid})` : m.kind;
}

/** Payload types that carry no media of their own: retransmission, redundancy, FEC. */
const NOT_PRIMARY = new Set(['rtx', 'red', 'ulpfec', 'flexfec-03']);

/** Whether a codec (by its encoding name) carries the media itself, not repairs of it. */
export function isPrimaryCodec(name: string): boolean {
  return !NOT_PRIMARY.has(name.toLowerCase());
}

export function describeCodec(c: OfferedCodec): string {
  const pm = c.fmtp['packetization-mode'];
  const profile = c.fmtp['profile-level-id'];
  const extra = [profile && `profile-level-id=${profile}`, pm !== undefined && `packetization-mode=${pm}`].filter(Boolean);
  return extra.length ? `${c.name} (${extra.join(', ')})` : `${c.name}/${c.clockRate}`;
}

export function writeSdp(sdp: sdpTransform.SessionDescription): string {
  return sdpTransform.write(sdp);
}

export type CandidateAddress = z.infer<typeof candidateAddress>;

/** "candidate:f 1 udp 2130706431 127.0.0.1 5000 typ host ..." -> its address parts. */
export function parseCandidate(line: string): CandidateAddress | undefined {
  const f = line.replace(/^(a=)?candidate:/, '').trim().split(/\s+/);
  if (f.length < 8 || f[6] !== 'typ') return undefined;
  return { protocol: f[2].toLowerCase(), address: f[4], port: Number(f[5]), type: f[7] };
}

/** An mDNS name (`<uuid>.local`) where a candidate's address would be. */
export function isMdnsName(address: string): boolean {
  return address.toLowerCase().endsWith('.local');
}

/**
 * The offer without host candidates hidden behind mDNS names (`<uuid>.local`): browsers
 * send those when the page has not been granted a camera or microphone (Firefox also when
 * permission prompts are turned off). Only the browser's own network could resolve them;
 * werift would multicast a query from the gateway for each and wait up to 10 s, and the
 * publisher never connected (measured with Firefox). Without them, the browser's checks
 * to the gateway's candidates make peer-reflexive ones, and it connects.
 */
export function withoutMdnsCandidates(sdp: sdpTransform.SessionDescription): sdpTransform.SessionDescription {
  const copy = structuredClone(sdp);
  for (const m of copy.media) {
    if (m.candidates) m.candidates = m.candidates.filter((c) => !isMdnsName(c.ip));
  }
  return copy;
}
