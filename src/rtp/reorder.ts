import { seqDelta, type RtpPacketLite } from './packet.js';

// werift hands packets over in arrival order (no jitter buffer), and ffmpeg's RTP
// demuxer copes with mild reordering only. This small window puts packets back in
// sequence order before they are forwarded; a gap is waited for at most `maxDelayMs`
// or until `maxPackets` are held, then skipped (a lost packet stays lost).

export interface ReorderOptions {
  /** Packets held while waiting for a missing one. Default 64. */
  maxPackets?: number;
  /** Longest wait for a missing packet, in ms. Default 50. */
  maxDelayMs?: number;
}

export class ReorderBuffer {
  private readonly held = new Map<number, RtpPacketLite>();
  private next: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly maxPackets: number;
  private readonly maxDelayMs: number;
  /** Packets given up on (never arrived in time). */
  skipped = 0;
  /** Late or duplicate packets dropped. */
  dropped = 0;

  constructor(
    private readonly emit: (p: RtpPacketLite) => void,
    options: ReorderOptions = {},
  ) {
    this.maxPackets = options.maxPackets ?? 64;
    this.maxDelayMs = options.maxDelayMs ?? 50;
  }

  push(p: RtpPacketLite): void {
    if (this.next === undefined) this.next = p.sequenceNumber;
    const d = seqDelta(this.next, p.sequenceNumber);
    if (d < 0) {
      // Behind the window: a late duplicate, or the sender restarted its numbering.
      if (d < -1000) this.reset(p.sequenceNumber);
      else {
        this.dropped++;
        return;
      }
    } else if (d > 1000) {
      this.reset(p.sequenceNumber); // a jump this large is a new source, not a gap
    }
    if (this.held.has(p.sequenceNumber)) {
      this.dropped++;
      return;
    }
    this.held.set(p.sequenceNumber, p);
    this.drain();
    if (this.held.size > this.maxPackets) this.skipGap();
    this.armTimer();
  }

  /** Emits everything held, in order, and forgets the position. */
  flush(): void {
    this.clearTimer();
    while (this.held.size > 0) this.skipGap();
    this.next = undefined;
  }

  close(): void {
    this.clearTimer();
    this.held.clear();
  }

  private reset(seq: number): void {
    this.flush();
    this.next = seq;
  }

  private drain(): void {
    while (this.next !== undefined) {
      const p = this.held.get(this.next);
      if (!p) return;
      this.held.delete(this.next);
      this.next = (this.next + 1) & 0xffff;
      this.emit(p);
    }
  }

  /** Gives up on the missing packet(s): jump to the oldest held packet. */
  private skipGap(): void {
    if (this.next === undefined || this.held.size === 0) return;
    let best: number | undefined;
    for (const seq of this.held.keys()) {
      if (best === undefined || seqDelta(this.next, seq) < seqDelta(this.next, best)) best = seq;
    }
    if (best === undefined) return;
    this.skipped += seqDelta(this.next, best);
    this.next = best;
    this.drain();
  }

  private armTimer(): void {
    if (this.held.size === 0) return this.clearTimer();
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.skipGap();
      this.armTimer();
    }, this.maxDelayMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
