import { describe, expect, it, vi } from 'vitest';
import { ContinuousStream } from '../../src/rtp/continuity.js';
import { PacketHistory } from '../../src/rtp/packet-history.js';
import type { RtpPacketLite } from '../../src/rtp/packet.js';
import { twccResults, ViewerHealth } from '../../src/media/viewer-health.js';

// What a WHEP viewer's RTP goes through in its media worker: the renumbering that keeps
// one SSRC, sequence numbers and timestamps going across the source's changes while a
// gap stays a gap (NACK can name it), the per-track history its NACKs are answered from,
// and the reading of its transport-cc feedback.

const pkt = (ssrc: number, sequenceNumber: number, timestamp: number): RtpPacketLite => ({ ssrc, sequenceNumber, timestamp, payloadType: 96, marker: false, payload: Buffer.from([1]) });

describe('ContinuousStream', () => {
  it('moves one source by fixed offsets: a gap stays a gap, a late packet lands where it belongs', () => {
    const s = new ContinuousStream(90000, 1234);
    const a = s.map(pkt(7, 100, 9000), 0)!;
    const b = s.map(pkt(7, 102, 9000), 1)!; // 101 lost before the gateway
    const late = s.map(pkt(7, 101, 9000), 2)!;
    expect(s.ssrc).toBe(1234);
    expect((b.sequenceNumber - a.sequenceNumber) & 0xffff).toBe(2);
    expect((late.sequenceNumber - a.sequenceNumber) & 0xffff).toBe(1);
    expect(s.sourceOf(late.sequenceNumber)).toEqual({ ssrc: 7, sequenceNumber: 101 });
    expect(s.again(pkt(7, 101, 9000))).toEqual(late);
  });

  it('a new source continues the numbers, its timestamps moved on by the wall-clock gap; late packets of the old one are dropped', () => {
    const s = new ContinuousStream(90000);
    const last = s.map(pkt(1, 65535, 4_000_000_000), 1000)!;
    const first = s.map(pkt(2, 10, 55), 1100)!; // an encoder restarted under a new SSRC, 100 ms later
    expect(first.sequenceNumber).toBe((last.sequenceNumber + 1) & 0xffff);
    expect((first.timestamp - last.timestamp) >>> 0).toBe(9000);
    expect(s.map(pkt(1, 0, 4_000_003_000), 1101)).toBeUndefined();
    expect(s.map(pkt(2, 11, 3055), 1133)!.sequenceNumber).toBe((first.sequenceNumber + 1) & 0xffff);
    expect(s.switches).toBe(1);
    expect(s.again(pkt(1, 65535, 0))).toBeUndefined(); // the old source's packets are not sent again
    expect(s.timestampAt(1133 + 1000)).toBe((first.timestamp + 3000 + 90000) >>> 0);
  });
});

describe('PacketHistory', () => {
  it('finds a packet by SSRC and number while it is kept', () => {
    const h = new PacketHistory(1000);
    expect(h.size).toBe(1024);
    for (let i = 0; i < 1500; i++) h.put(pkt(5, (65000 + i) & 0xffff, i));
    expect(h.get(5, (65000 + 1499) & 0xffff)?.timestamp).toBe(1499);
    expect(h.get(5, (65000 + 600) & 0xffff)?.timestamp).toBe(600);
    expect(h.get(5, 65000 + 400)).toBeUndefined(); // a ring ago: overwritten
    expect(h.get(6, (65000 + 1499) & 0xffff)).toBeUndefined(); // another source
  });
});

describe('transport-cc feedback', () => {
  it('reads run-length and status-vector chunks, and the arrival times of the received packets', () => {
    const results = twccResults({
      baseSequenceNumber: 65534,
      packetStatusCount: 6,
      referenceTime: 10, // 640 ms
      packetChunks: [
        { runLength: 2, packetStatus: 1 }, // 65534, 65535 received
        { symbolList: [0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }, // 0 lost, 1, 2, 3 received; the rest is past the count
      ],
      recvDeltas: [{ delta: 1000 }, { delta: 2000 }, { delta: 5000 }, { delta: 250 }, { delta: 750 }],
    });
    expect(results).toEqual([
      { sequenceNumber: 65534, received: true, receivedAtMs: 641 },
      { sequenceNumber: 65535, received: true, receivedAtMs: 643 },
      { sequenceNumber: 0, received: false, receivedAtMs: 643 },
      { sequenceNumber: 1, received: true, receivedAtMs: 648 },
      { sequenceNumber: 2, received: true, receivedAtMs: 648.25 },
      { sequenceNumber: 3, received: true, receivedAtMs: 649 },
    ]);
  });

  it('a viewer whose packets are lost or queue up is not keeping up', () => {
    const h = new ViewerHealth();
    let t = 0;
    for (let seq = 0; seq < 100; seq++) h.sent(seq, (t += 10));
    h.feedback(Array.from({ length: 100 }, (_, i) => ({ sequenceNumber: i, received: true, receivedAtMs: 5000 + i * 10 })), t);
    expect(h.keepingUp).toBe(true);
    expect(h.lossPercent).toBe(0);
    // Two seconds on, the next 100 arrive later and later (a queue builds up to a second), a fifth of them lost.
    t += 2000;
    for (let seq = 100; seq < 200; seq++) h.sent(seq, (t += 10));
    h.feedback(Array.from({ length: 100 }, (_, i) => ({ sequenceNumber: 100 + i, received: i % 5 !== 0, receivedAtMs: 8000 + i * 20 })), t);
    expect(h.lossPercent).toBeGreaterThan(9);
    expect(h.queueDelayMs).toBeGreaterThan(300);
    expect(h.keepingUp).toBe(false);
  });
});

describe("viewers' keyframe requests", () => {
  it('reach the publisher merged: at most one per second per stream, the rest folded into the next', async () => {
    const { viewerKeyframeRequest, VIEWER_KEYFRAME_MS } = await import('../../src/media/viewer-session.js');
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const session = { requestKeyframe: vi.fn() };
      const other = { requestKeyframe: vi.fn() };
      for (let i = 0; i < 6; i++) {
        viewerKeyframeRequest(session); // six viewers' PLIs within 100 ms
        vi.advanceTimersByTime(20);
      }
      viewerKeyframeRequest(other); // another stream is not held back
      expect(session.requestKeyframe).toHaveBeenCalledTimes(1);
      expect(other.requestKeyframe).toHaveBeenCalledTimes(1);
      vi.advanceTimersByTime(VIEWER_KEYFRAME_MS);
      expect(session.requestKeyframe).toHaveBeenCalledTimes(2);
      vi.advanceTimersByTime(5 * VIEWER_KEYFRAME_MS);
      expect(session.requestKeyframe).toHaveBeenCalledTimes(2); // nobody asked since
    } finally {
      vi.useRealTimers();
    }
  });
});
