import { describe, expect, it } from 'vitest';
import { RtpHeader } from 'werift';
import { installFastRtpHeaderParse, parseRtpHeader, weriftDeSerialize } from '../../src/werift/rtp-header-parse.js';

// The media workers parse RTP headers with bit operations instead of werift's string-based
// parser; every field werift reads must come out the same, or werift's SRTP, NACK and
// transport-cc code downstream would see another packet.

function packet(opts: { csrc?: number[]; ext?: { profile: number; body: number[] }; padding?: number; marker?: boolean; pt?: number }): Buffer {
  const csrc = opts.csrc ?? [];
  const head = Buffer.alloc(12 + 4 * csrc.length);
  head[0] = 0x80 | (opts.padding ? 0x20 : 0) | (opts.ext ? 0x10 : 0) | csrc.length;
  head[1] = (opts.marker ? 0x80 : 0) | (opts.pt ?? 102);
  head.writeUInt16BE(65530, 2);
  head.writeUInt32BE(0xdeadbeef, 4);
  head.writeUInt32BE(0x12345678, 8);
  csrc.forEach((c, i) => head.writeUInt32BE(c, 12 + 4 * i));
  const parts = [head];
  if (opts.ext) {
    const body = Buffer.from(opts.ext.body);
    const words = Math.ceil(body.length / 4);
    const ext = Buffer.alloc(4 + words * 4);
    ext.writeUInt16BE(opts.ext.profile, 0);
    ext.writeUInt16BE(words, 2);
    body.copy(ext, 4);
    parts.push(ext);
  }
  parts.push(Buffer.from([0x65, 1, 2, 3, 4, 5]));
  if (opts.padding) {
    const pad = Buffer.alloc(opts.padding);
    pad[opts.padding - 1] = opts.padding;
    parts.push(pad);
  }
  return Buffer.concat(parts);
}

const cases: Record<string, Buffer> = {
  plain: packet({}),
  'marker and payload type 127': packet({ marker: true, pt: 127 }),
  'two CSRCs': packet({ csrc: [1, 0xffffffff] }),
  'one-byte extensions (mid, transport-cc, padding byte, id 15 ends)': packet({ ext: { profile: 0xbede, body: [0x10, 0x31, 0x21, 0x01, 0x02, 0x00, 0xf0, 0x99] } }),
  'two-byte extensions': packet({ ext: { profile: 0x1000, body: [0x05, 0x02, 0xaa, 0xbb, 0x00, 0x07, 0x01, 0xcc] } }),
  'another profile': packet({ ext: { profile: 0x1234, body: [1, 2, 3, 4, 5, 6, 7, 8] } }),
  'padding after an extension': packet({ ext: { profile: 0xbede, body: [0x10, 0x31] }, padding: 4, marker: true }),
};

const plain = (h: RtpHeader) => ({ ...h, extensions: h.extensions.map((e) => ({ id: e.id, payload: [...e.payload] })) });

describe('RTP header parse (media workers)', () => {
  it('compares against werift\'s own parser, not against itself', () => {
    // Nothing in this thread has installed the patch: what werift calls is still its own.
    expect(RtpHeader.deSerialize).not.toBe(parseRtpHeader);
    expect(weriftDeSerialize).not.toBe(parseRtpHeader);
    expect(plain(weriftDeSerialize(cases.plain))).toEqual(plain(RtpHeader.deSerialize(cases.plain)));
  });

  for (const [name, buf] of Object.entries(cases)) {
    it(`reads ${name} as werift does`, () => {
      expect(plain(parseRtpHeader(buf))).toEqual(plain(weriftDeSerialize(buf)));
    });
  }

  it('installed, it is what werift calls, with werift\'s results', () => {
    installFastRtpHeaderParse();
    expect(RtpHeader.deSerialize).toBe(parseRtpHeader);
    for (const buf of Object.values(cases)) expect(plain(RtpHeader.deSerialize(buf))).toEqual(plain(weriftDeSerialize(buf)));
  });
});
