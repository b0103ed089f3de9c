import * as sdpTransform from 'sdp-transform';

// Reading a publisher's SDP offer: parse, check it can be answered, and list what each
// m-section offers. Every problem becomes an SdpError with the HTTP status a WHIP
// client should see and a one-line message naming the problem.

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

export interface ParsedOffer {
  sdp: sdpTransform.SessionDescription;
  /** audio and video m-sections that send media (port not 0, direction sends). */
  sending: OfferedMedia[];
}

export function parseFmtp(config: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (config ?? '').split(';')) {
    const [k, ...rest] = part.trim().split('=');
    if (k) out[k.toLowerCase()] = rest.join('=').trim();
  }
  return out;
}

function mediaCodecs(m: sdpTransform.MediaDescription): OfferedCodec[] {
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

/** Parses and checks an offer. Throws SdpError (400) naming the first problem found. */
export function parseOffer(text: string): ParsedOffer {
  if (!/^v=0\r?\n/.test(text.trimStart())) throw new SdpError(400, 'body is not an SDP offer (must start with "v=0")');
  let sdp: sdpTransform.SessionDescription;
  try {
    sdp = sdpTransform.parse(text);
  } catch (e) {
    throw new SdpError(400, `unparseable SDP: ${(e as Error).message}`);
  }
  if (!sdp.media || sdp.media.length === 0) throw new SdpError(400, 'SDP offer has no m= sections');
  const av = sdp.media
    .map((m, index) => ({ m, index }))
    .filter(({ m }) => m.type === 'audio' || m.type === 'video');
  if (av.length === 0) throw new SdpError(400, 'SDP offer has no audio or video section');
  const sending: OfferedMedia[] = [];
  for (const { m, index } of av) {
    if (!m.rtp || m.rtp.length === 0 || !m.protocol.includes('RTP')) {
      throw new SdpError(400, `m-section ${index} (${m.type}) lists no RTP payload types`);
    }
    const direction = m.direction ?? sdp.direction ?? 'sendrecv';
    const ufrag = m.iceUfrag ?? sdp.iceUfrag;
    const pwd = m.icePwd ?? sdp.icePwd;
    if (!ufrag || !pwd) throw new SdpError(400, `m-section ${index} (${m.type}) has no ice-ufrag/ice-pwd`);
    if (!(m.fingerprint ?? sdp.fingerprint)) throw new SdpError(400, `m-section ${index} (${m.type}) has no DTLS fingerprint`);
    if (m.port === 0 || direction === 'recvonly' || direction === 'inactive') continue;
    sending.push({ index, kind: m.type as MediaKind, mid: m.mid === undefined ? undefined : String(m.mid), direction, codecs: mediaCodecs(m) });
  }
  if (sending.length === 0) throw new SdpError(400, 'SDP offer does not send any audio or video (all sections are recvonly, inactive or disabled)');
  return { sdp, sending };
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
