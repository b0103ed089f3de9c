import { randomInt } from 'node:crypto';
import { seqDelta, type RtpPacketLite } from './packet.js';

// One output stream of RTP that goes on without jumps while its source changes: a fixed
// SSRC, sequence numbers and timestamps that continue across a publisher's new SSRC (an
// encoder restarted), an ICE restart, a shared encoder replaced, a composite re-laid out.
// Within one source, numbers are moved by a fixed offset, so a packet lost before the
// gateway stays a gap the receiver can ask for again (NACK) and a retransmission lands
// where it belongs; at a new source the offsets are chosen so that its first packet
// follows the last one sent, its timestamp moved on by the wall-clock time between them.
// (rtp/forwarder.ts, for ffmpeg, renumbers every packet instead: ffmpeg does not NACK.)

/** The timestamp offset that puts a new source's first timestamp `firstTs` where the output's clock is now. */
export function continuedTimestampOffset(lastOutTs: number, lastSentAt: number, now: number, clockRate: number, firstTs: number): number {
  const elapsed = Math.max(1, Math.round(((now - lastSentAt) / 1000) * clockRate));
  return (lastOutTs + elapsed - firstTs) >>> 0;
}

export interface Mapped {
  sequenceNumber: number;
  timestamp: number;
}

/** Sources left behind that are remembered (a late packet of one is dropped, not taken for a change back). */
const LEFT_SOURCES = 16;

export class ContinuousStream {
  readonly ssrc: number;
  private source: number | undefined;
  private seqOffset = 0;
  private tsOffset = 0;
  private highestSeq: number | undefined;
  private lastTs: number | undefined;
  private lastAt = 0;
  private readonly left: number[] = [];
  /** Source changes so far. */
  switches = 0;

  constructor(
    private readonly clockRate: number,
    ssrc?: number,
  ) {
    this.ssrc = ssrc ?? randomInt(1, 0xffffffff);
  }

  /** The output numbers for `p`, arriving at `now` (ms); undefined for a late packet of a source left behind. */
  map(p: RtpPacketLite, now: number): Mapped | undefined {
    if (p.ssrc !== this.source && !this.begin(p, now)) return undefined;
    const sequenceNumber = (p.sequenceNumber + this.seqOffset) & 0xffff;
    const timestamp = (p.timestamp + this.tsOffset) >>> 0;
    if (this.highestSeq === undefined || seqDelta(this.highestSeq, sequenceNumber) > 0) {
      this.highestSeq = sequenceNumber;
      this.lastTs = timestamp;
      this.lastAt = now;
    }
    return { sequenceNumber, timestamp };
  }

  /** The output numbers of a packet of the current source sent before (a retransmission); nothing changes. */
  again(p: RtpPacketLite): Mapped | undefined {
    if (p.ssrc !== this.source) return undefined;
    return { sequenceNumber: (p.sequenceNumber + this.seqOffset) & 0xffff, timestamp: (p.timestamp + this.tsOffset) >>> 0 };
  }

  /** The current source and its own number for output number `seq` (a NACK names output numbers). */
  sourceOf(seq: number): { ssrc: number; sequenceNumber: number } | undefined {
    if (this.source === undefined) return undefined;
    return { ssrc: this.source, sequenceNumber: (seq - this.seqOffset) & 0xffff };
  }

  /** The output's RTP time at `now` (ms), running on from the last packet (for sender reports). */
  timestampAt(now: number): number | undefined {
    if (this.lastTs === undefined) return undefined;
    return (this.lastTs + Math.round(((now - this.lastAt) / 1000) * this.clockRate)) >>> 0;
  }

  private begin(p: RtpPacketLite, now: number): boolean {
    if (this.left.includes(p.ssrc)) return false;
    if (this.source !== undefined) {
      this.left.push(this.source);
      if (this.left.length > LEFT_SOURCES) this.left.shift();
      this.switches++;
    }
    this.source = p.ssrc;
    if (this.highestSeq === undefined || this.lastTs === undefined) {
      this.seqOffset = (randomInt(0, 0x8000) - p.sequenceNumber) & 0xffff;
      this.tsOffset = (randomInt(0, 0x7fffffff) - p.timestamp) >>> 0;
    } else {
      this.seqOffset = (this.highestSeq + 1 - p.sequenceNumber) & 0xffff;
      this.tsOffset = continuedTimestampOffset(this.lastTs, this.lastAt, now, this.clockRate, p.timestamp);
    }
    return true;
  }
}
