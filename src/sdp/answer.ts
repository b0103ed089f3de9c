import * as sdpTransform from 'sdp-transform';
import { isPrimaryCodec } from './offer.js';

// What the gateway adds to werift's SDP answer before the publisher sees it:
//
// - `a=rtcp-fb:<pt> transport-cc` where the transport-wide sequence number extension was
//   negotiated. werift would generate its own (wrong) feedback for codecs it knows to have
//   transport-cc, so it is not told; the gateway sends the feedback itself
//   (webrtc/congestion-feedback.ts) and only the answer says so.
// - The publisher's video bitrate range: `b=AS` (kbit/s) and `b=TIAS` (bit/s) on the video
//   section, honoured by Chromium, Safari and Firefox as the most they may send, and
//   `x-google-max-bitrate` / `x-google-start-bitrate` (kbit/s) in the video codec's fmtp,
//   which libwebrtc browsers (Chromium, Safari) read: the start value is where their
//   bandwidth estimate begins instead of 300 kbit/s, so the picture is sharp from the
//   first seconds. Browsers that ignore the x-google parameters (Firefox) start low and
//   climb on the feedback alone.
// - For a section the answer rejects (port 0) that the publisher offered to send, the
//   reason as the section's title (`i=`, RFC 8866 §5.4), so that a client or a person
//   reading the answer sees why (the built-in publish page shows it).

/** The transport-wide sequence number header extension. */
export const TRANSPORT_CC_URI = 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';

export interface VideoBitrate {
  maxKbps: number;
  startKbps: number;
}

export interface AnswerAdditions {
  video: VideoBitrate;
  /** Advertise transport-cc feedback where the extension was negotiated. */
  transportCc: boolean;
  /** Sections left out, by offer position, with why. */
  rejected?: { index: number; reason: string }[];
}


export function shapeAnswer(answer: string, add: AnswerAdditions): string {
  const sdp = sdpTransform.parse(answer);
  for (const r of add.rejected ?? []) {
    const m = sdp.media[r.index];
    // One line of printable text (RFC 8866 text is UTF-8 without CR/LF).
    if (m && m.port === 0) m.description = r.reason.replace(/[\r\n]+/g, ' ');
  }
  for (const m of sdp.media) {
    if (m.type !== 'audio' && m.type !== 'video') continue;
    const primaries = (m.rtp ?? []).filter((r) => isPrimaryCodec(r.codec)).map((r) => r.payload);
    if (add.transportCc && m.ext?.some((e) => e.uri === TRANSPORT_CC_URI)) {
      m.rtcpFb ??= [];
      for (const pt of primaries) {
        if (!m.rtcpFb.some((f) => String(f.payload) === String(pt) && f.type === 'transport-cc')) m.rtcpFb.push({ payload: pt, type: 'transport-cc' });
      }
    }
    if (m.type === 'video' && m.port !== 0) {
      const { maxKbps, startKbps } = add.video;
      m.bandwidth = [
        { type: 'AS', limit: maxKbps },
        { type: 'TIAS', limit: maxKbps * 1000 },
      ];
      const start = Math.min(startKbps, maxKbps);
      m.fmtp ??= [];
      for (const pt of primaries) {
        const params = `x-google-max-bitrate=${maxKbps};x-google-start-bitrate=${start}`;
        const line = m.fmtp.find((f) => f.payload === pt);
        if (line) line.config = `${line.config};${params}`;
        else m.fmtp.push({ payload: pt, config: params });
      }
    }
  }
  return sdpTransform.write(sdp);
}

/**
 * The ids the answer negotiated for the transport-wide CC extension. BUNDLE asks for one
 * id per extension across sections; some senders (werift's offers) number each section
 * on its own, so every section's id counts.
 */
export function transportCcExtensionIds(answer: string): number[] {
  const ids = sdpTransform.parse(answer).media.flatMap((m) => (m.ext ?? []).filter((e) => e.uri === TRANSPORT_CC_URI).map((e) => e.value));
  return [...new Set(ids)];
}
