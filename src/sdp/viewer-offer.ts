import type * as sdpTransform from 'sdp-transform';
import { acceptBundleOnly } from './bundle-only.js';
import { checkBundled, mediaCodecs, parseSdp, SdpError, type MediaKind, type OfferedCodec } from './offer.js';

// Reading a WHEP viewer's offer (draft-ietf-wish-whep): the same checks as a publisher's
// (sdp/offer.ts: size limits, ICE credentials and a fingerprint, one bundled transport),
// but its audio and video sections are to receive: recvonly (what a WHEP player sends) or
// sendrecv (the gateway answers sendonly either way).

export interface ReceivingMedia {
  /** Position of the m-section in the offer. */
  index: number;
  kind: MediaKind;
  mid?: string;
  codecs: OfferedCodec[];
}

export interface ParsedViewerOffer {
  sdp: sdpTransform.SessionDescription;
  /** Audio and video sections that can receive (port not 0, or bundle-only). */
  receiving: ReceivingMedia[];
}

/** Parses and checks a viewer's offer. Throws SdpError (400) naming the first problem found. */
export function parseViewerOffer(text: string): ParsedViewerOffer {
  const sdp = parseSdp(text);
  acceptBundleOnly(sdp);
  const receiving: ReceivingMedia[] = [];
  for (const [index, m] of sdp.media.entries()) {
    if (m.type !== 'audio' && m.type !== 'video') continue;
    if (!m.rtp || m.rtp.length === 0 || !m.protocol.includes('RTP')) throw new SdpError(400, `m-section ${index} (${m.type}) lists no RTP payload types`);
    const direction = m.direction ?? sdp.direction ?? 'sendrecv';
    if (m.port === 0 || direction === 'sendonly' || direction === 'inactive') continue;
    if (!(m.iceUfrag ?? sdp.iceUfrag) || !(m.icePwd ?? sdp.icePwd)) throw new SdpError(400, `m-section ${index} (${m.type}) has no ice-ufrag/ice-pwd`);
    if (!(m.fingerprint ?? sdp.fingerprint)) throw new SdpError(400, `m-section ${index} (${m.type}) has no DTLS fingerprint`);
    receiving.push({ index, kind: m.type, mid: m.mid === undefined ? undefined : String(m.mid), codecs: mediaCodecs(m) });
  }
  if (receiving.length === 0) throw new SdpError(400, 'SDP offer receives no audio or video (a WHEP offer has recvonly audio and video sections)');
  checkBundled(sdp);
  return { sdp, receiving };
}
