import { describe, expect, it } from 'vitest';
import { ReorderBuffer } from '../../src/rtp/reorder.js';
import type { RtpPacketLite } from '../../src/rtp/packet.js';

const pkt = (seq: number): RtpPacketLite => ({ payloadType: 96, sequenceNumber: seq & 0xffff, timestamp: seq * 3000, ssrc: 1, marker: false, payload: Buffer.from([seq & 0xff]) });

function run(seqs: number[], opts = {}): { out: number[]; buf: ReorderBuffer } {
  const out: number[] = [];
  const buf = new ReorderBuffer((p) => out.push(p.sequenceNumber), opts);
  for (const s of seqs) buf.push(pkt(s));
  return { out, buf };
}

describe('reorder buffer', () => {
  it('puts swapped packets back in order', () => {
    expect(run([1, 3, 2, 4, 6, 5]).out).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('works across the 16-bit wrap', () => {
    expect(run([65534, 0, 65535, 1]).out).toEqual([65534, 65535, 0, 1]);
  });

  it('drops duplicates and late packets', () => {
    const { out, buf } = run([1, 2, 2, 3, 1]);
    expect(out).toEqual([1, 2, 3]);
    expect(buf.dropped).toBe(2);
  });

  it('gives up on a lost packet after the window fills', () => {
    const { out, buf } = run([1, 3, 4, 5, 6], { maxPackets: 3 });
    expect(out).toEqual([1, 3, 4, 5, 6]);
    expect(buf.skipped).toBe(1);
  });

  it('gives up on a lost packet after the delay', async () => {
    const { out, buf } = run([10, 12], { maxDelayMs: 20 });
    expect(out).toEqual([10]);
    await new Promise((r) => setTimeout(r, 60));
    expect(out).toEqual([10, 12]);
    buf.close();
  });

  it('follows a sender that restarts its numbering', () => {
    expect(run([100, 101, 40000, 40001]).out).toEqual([100, 101, 40000, 40001]);
  });
});
