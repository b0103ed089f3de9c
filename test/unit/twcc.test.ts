import { describe, expect, it } from 'vitest';
import { serializeFeedback, TwccRecorder, type TwccFeedback } from '../../src/rtp/twcc.js';

// Transport-wide CC feedback, checked two ways: byte for byte against packets worked out
// by hand from draft-holmer-rmcat-transport-wide-cc-extensions-01 (golden vectors), and
// by decoding what the recorder sends with the parser below, written from the draft
// independently of the encoder: every packet must come back with its arrival time (to
// the 250 µs tick) or as not received.

interface Decoded {
  padding: boolean;
  senderSsrc: number;
  mediaSsrc: number;
  baseSequence: number;
  statusCount: number;
  referenceTime: number;
  feedbackCount: number;
  /** seq -> arrival in µs (reference time + deltas), or null when reported as not received. */
  packets: Map<number, number | null>;
}

function decode(buf: Buffer): Decoded {
  expect(buf[0] >> 6, 'version').toBe(2);
  expect(buf[0] & 0x1f, 'FMT').toBe(15);
  expect(buf[1], 'PT').toBe(205);
  expect((buf.readUInt16BE(2) + 1) * 4, 'length field').toBe(buf.length);
  const padding = (buf[0] & 0x20) !== 0;
  const end = padding ? buf.length - buf[buf.length - 1] : buf.length;
  const baseSequence = buf.readUInt16BE(12);
  const statusCount = buf.readUInt16BE(14);
  const referenceTime = buf.readUIntBE(16, 3);
  const symbols: number[] = [];
  let o = 20;
  while (symbols.length < statusCount) {
    const chunk = buf.readUInt16BE(o);
    o += 2;
    if ((chunk & 0x8000) === 0) {
      const symbol = (chunk >> 13) & 0x3;
      const run = chunk & 0x1fff;
      for (let i = 0; i < run; i++) symbols.push(symbol);
    } else if ((chunk & 0x4000) === 0) {
      for (let bit = 13; bit >= 0; bit--) symbols.push((chunk >> bit) & 1);
    } else {
      for (let pair = 6; pair >= 0; pair--) symbols.push((chunk >> (pair * 2)) & 0x3);
    }
  }
  symbols.length = statusCount;
  const packets = new Map<number, number | null>();
  let t = referenceTime * 64_000;
  for (let i = 0; i < statusCount; i++) {
    const seq = (baseSequence + i) & 0xffff;
    if (symbols[i] === 0) {
      packets.set(seq, null);
      continue;
    }
    expect(symbols[i], `symbol of ${seq}`).not.toBe(3);
    const delta = symbols[i] === 1 ? buf.readUInt8(o) : buf.readInt16BE(o);
    o += symbols[i] === 1 ? 1 : 2;
    t += delta * 250;
    packets.set(seq, t);
  }
  expect(o, 'deltas end where the padding starts').toBeLessThanOrEqual(end);
  expect(end - o, 'at most 3 bytes of zero padding').toBeLessThan(4);
  return { padding, senderSsrc: buf.readUInt32BE(4), mediaSsrc: buf.readUInt32BE(8), baseSequence, statusCount, referenceTime, feedbackCount: buf[19], packets };
}

function send(r: TwccRecorder): Decoded[] {
  return r.feedback().map((f: TwccFeedback) => decode(serializeFeedback(f)));
}

const hex = (b: Buffer) => b.toString('hex').replace(/(.{8})/g, '$1 ').trim();

describe('transport-wide CC feedback', () => {
  it('golden vector: a loss and a reordered pair (two-bit status vector, negative delta)', () => {
    const r = new TwccRecorder(1);
    // Arrival order 100, 101, 104, 103, 105; 102 never arrives.
    r.record(100, 1_000_000, 0x12345678);
    r.record(101, 1_001_000, 0x12345678);
    r.record(104, 1_003_000, 0x12345678);
    r.record(103, 1_004_000, 0x12345678);
    r.record(105, 1_004_250, 0x12345678);
    const [f] = r.feedback();
    // Reference 15 (960 ms); deltas 160, 4, lost, 12 (103 at 1.004 s), -4 (104 at 1.003 s,
    // large), 5. Statuses 1 1 0 1 2 1 in one two-bit vector chunk: 0xd464.
    expect(hex(serializeFeedback(f))).toBe(hex(Buffer.from('8fcd0006' + '00000001' + '12345678' + '00640006' + '00000f00' + 'd464a004' + '0cfffc05', 'hex')));
  });

  it('golden vector: sequence wrap, a run of losses, a large delta and RTCP padding', () => {
    const r = new TwccRecorder(1);
    r.record(65535, 2_000_000, 7);
    r.record(10, 2_100_000, 7); // 0..9 lost; 100 ms later: delta 400 ticks (large)
    const [f] = r.feedback();
    // Reference 31; deltas 64 and 400. Chunks: [1,0,0,0,0,0,0] and [0,0,0,0,2] (two-bit
    // vectors, as a large delta is near). 27 bytes + 1 byte of padding (P bit, count 1).
    expect(hex(serializeFeedback(f))).toBe(hex(Buffer.from('afcd0006' + '00000001' + '00000007' + 'ffff000c' + '00001f00' + 'd000c020' + '40019001', 'hex')));
  });

  it('golden vector: a long run of received packets is one run-length chunk', () => {
    const r = new TwccRecorder(9);
    for (let i = 0; i < 20; i++) r.record(500 + i, 640_000 + i * 1000, 3);
    const [f] = r.feedback();
    // Reference 10 (640 ms), first delta 0, then 4 ticks each. Run-length chunk 0x2014.
    // 42 bytes + 2 of padding.
    const expected = 'afcd000a' + '00000009' + '00000003' + '01f40014' + '00000a00' + '2014' + '00' + '04'.repeat(19) + '0002';
    expect(hex(serializeFeedback(f))).toBe(hex(Buffer.from(expected, 'hex')));
  });

  it('reports every packet with its arrival time to the tick, and missing ones as not received', () => {
    const r = new TwccRecorder(1);
    const sent: { seq: number; at: number }[] = [];
    let t = 5_000_000;
    for (let seq = 65000; seq < 65000 + 1500; seq++) {
      t += 137 + ((seq * 7919) % 3000); // irregular spacing, 0.1-3 ms
      if (seq % 17 === 0 || seq % 101 === 0) continue; // lost
      sent.push({ seq: seq & 0xffff, at: t });
    }
    // Swap some neighbours: reordering inside a report.
    for (let i = 10; i < sent.length - 1; i += 37) [sent[i], sent[i + 1]] = [sent[i + 1], sent[i]];
    const decoded: Decoded[] = [];
    let next = 0;
    for (const p of sent) {
      r.record(p.seq, p.at, 42);
      if (++next % 25 === 0) decoded.push(...send(r));
    }
    decoded.push(...send(r));
    const latest = new Map<number, number | null>();
    for (const d of decoded) for (const [seq, at] of d.packets) latest.set(seq, at);
    for (const p of sent) expect(latest.get(p.seq), `seq ${p.seq}`).toBe(Math.round(p.at / 250) * 250);
    const lost = [...latest].filter(([, at]) => at === null).map(([seq]) => seq);
    const expectedLost = Array.from({ length: 1500 }, (_, i) => 65000 + i).filter((s) => s % 17 === 0 || s % 101 === 0).map((s) => s & 0xffff);
    expect(lost.sort((a, b) => a - b)).toEqual(expectedLost.filter((s) => latest.has(s)).sort((a, b) => a - b));
    expect(decoded.map((d) => d.feedbackCount)).toEqual(decoded.map((_, i) => i & 0xff));
    expect(decoded.every((d) => d.mediaSsrc === 42 && d.senderSsrc === 1)).toBe(true);
  });

  it('a packet that arrives after its number was reported is reported again, with its time', () => {
    const r = new TwccRecorder(1);
    r.record(1, 1_000_000, 5);
    r.record(3, 1_002_000, 5);
    const [first] = send(r);
    expect(first.packets.get(2)).toBeNull();
    r.record(2, 1_030_000, 5); // 28 ms late
    r.record(4, 1_031_000, 5);
    const [second] = send(r);
    expect(second.baseSequence).toBe(2);
    expect([...second.packets]).toEqual([
      [2, 1_030_000],
      [3, 1_002_000],
      [4, 1_031_000],
    ]);
  });

  it('nothing new: no report; a pause of more than 8 s starts a new report', () => {
    const r = new TwccRecorder(1);
    expect(r.feedback()).toEqual([]);
    r.record(7, 1_000_000, 5);
    expect(send(r)).toHaveLength(1);
    expect(r.feedback()).toEqual([]);
    r.record(8, 1_001_000, 5);
    r.record(9, 10_000_000, 5); // 9 s later: does not fit in a 16-bit delta
    const reports = send(r);
    expect(reports.map((d) => [...d.packets.keys()])).toEqual([[8], [9]]);
    expect(reports[1].packets.get(9)).toBe(10_000_000);
  });

  it('keeps only a short history however long the stream runs', () => {
    const r = new TwccRecorder(1);
    let seq = 0;
    for (let ms = 0; ms < 60_000; ms += 2) {
      r.record(seq++ & 0xffff, ms * 1000, 5);
      if (ms % 50 === 0) r.feedback();
    }
    // 500 packets a second, 0.5 s back window: a few hundred entries, not 30 000.
    expect(r.size).toBeLessThan(600);
  });

  it('a sender that starts counting again far away is followed, not reported as 30 000 losses', () => {
    const r = new TwccRecorder(1);
    r.record(100, 1_000_000, 5);
    send(r);
    r.record(40_000, 1_010_000, 5);
    r.record(40_001, 1_011_000, 5);
    const [d] = send(r);
    expect(d.baseSequence).toBe(40_000);
    expect([...d.packets.values()].every((v) => v !== null)).toBe(true);
  });
});
