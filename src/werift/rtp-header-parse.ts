import { RtpHeader } from 'werift';

// werift parses every RTP header (several times per packet: SRTP, then the packet, then
// its receiver) by turning each header byte into a string of '0' and '1' characters and
// back (its getBit()): 5 % of a media worker's time at 10 publishers, plus the garbage.
// This is the same parse with bit operations, put in place of RtpHeader.deSerialize
// (werift's callers look it up on the class at each call) by installWeriftPatches(). A
// unit test holds it to werift's own parser, which this module keeps (weriftDeSerialize).

type Extension = { id: number; payload: Buffer };

/** The header as werift's RtpHeader.deSerialize returns it. */
export function parseRtpHeader(raw: Buffer): RtpHeader {
  const h = new RtpHeader();
  const b0 = raw[0];
  h.version = b0 >> 6;
  h.padding = (b0 & 0x20) !== 0;
  h.extension = (b0 & 0x10) !== 0;
  h.csrcLength = b0 & 0x0f;
  const csrc: number[] = [];
  for (let i = 0; i < h.csrcLength; i++) csrc.push(raw.readUInt32BE(12 + 4 * i));
  h.csrc = csrc;
  h.marker = (raw[1] & 0x80) !== 0;
  h.payloadType = raw[1] & 0x7f;
  h.sequenceNumber = raw.readUInt16BE(2);
  h.timestamp = raw.readUInt32BE(4);
  h.ssrc = raw.readUInt32BE(8);
  let at = 12 + 4 * h.csrcLength;
  if (h.extension) {
    const profile = raw.readUInt16BE(at);
    h.extensionProfile = profile as RtpHeader['extensionProfile']; // werift's type lists two; any can come
    const length = raw.readUInt16BE(at + 2) * 4;
    h.extensionLength = length;
    at += 4;
    const end = at + length;
    const extensions: Extension[] = [];
    if (profile === 0xbede) {
      // RFC 8285 one-byte headers
      while (at < end) {
        if (raw[at] === 0) {
          at++;
          continue;
        }
        const id = raw[at] >> 4;
        const len = (raw[at] & 0x0f) + 1;
        at++;
        if (id === 15) break;
        extensions.push({ id, payload: raw.subarray(at, at + len) });
        at += len;
      }
    } else if (profile === 0x1000) {
      // RFC 8285 two-byte headers
      while (at < end) {
        if (raw[at] === 0) {
          at++;
          continue;
        }
        const id = raw[at];
        const len = raw[at + 1];
        at += 2;
        extensions.push({ id, payload: raw.subarray(at, at + len) });
        at += len;
      }
    } else {
      const payload = raw.subarray(at, at + length);
      extensions.push({ id: 0, payload });
      at += payload.length;
    }
    h.extensions = extensions;
  }
  h.payloadOffset = at;
  if (h.padding) h.paddingSize = raw[raw.length - 1];
  return h;
}

/** werift's own parser, as it was before any install (tests compare against it). */
export const weriftDeSerialize: (buf: Buffer) => RtpHeader = RtpHeader.deSerialize.bind(RtpHeader);

let installed = false;

export function installFastRtpHeaderParse(): void {
  if (installed) return;
  installed = true;
  RtpHeader.deSerialize = parseRtpHeader;
}
