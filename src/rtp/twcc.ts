import { seqDelta } from './packet.js';

// Transport-wide congestion control feedback, receiver side
// (draft-holmer-rmcat-transport-wide-cc-extensions-01). The browser numbers every RTP
// packet of the transport (audio, video, retransmissions and probes alike) and learns,
// from this feedback, which packets arrived and when. Its delay-based estimator (GCC)
// raises the bitrate while arrival gaps follow send gaps, and lowers it when they grow.
// So the feedback must be exact: werift's own generator (ReceiverTWCC) counts the first
// delta of each report from the previous packet instead of the reference time, reports
// missing packets as received and only reports when 10 packets are pending; Chromium
// reads that as congestion and falls to a few hundred kbit/s on a perfect link.
//
// Modelled on libwebrtc's RemoteEstimatorProxy and TransportFeedback:
// - arrival times are kept per unwrapped sequence number for a short back window;
// - each report starts at the first number not yet reported and ends at the newest packet
//   received; numbers in between that never arrived are reported as not received;
// - a packet that arrives after its number was reported moves the start back, so the
//   next report covers it again (the sender takes the newest report of a number);
// - the reference time is the first received packet's arrival in 64 ms units, and every
//   delta (250 µs ticks) is counted from the previous packet's *quantised* time, so the
//   sender's reconstruction never drifts;
// - a delta that does not fit in 16 bits (a pause longer than 8 s) starts a new report.
// Pure code: time comes in as microseconds from any monotonic clock.

const TICK_US = 250;
const REFERENCE_UNIT_US = 64_000;
const TICKS_PER_REFERENCE_UNIT = REFERENCE_UNIT_US / TICK_US;
/** Arrival times are kept this long after their number was reported (late packets). */
const BACK_WINDOW_US = 500_000;
/** A jump further than this is a sender that started counting again, not a gap. */
const MAX_SEQUENCE_JUMP = 0x4000;
/** Received packets per report: keeps a report (at most ~800 bytes) inside one datagram. */
const MAX_RECEIVED_PER_REPORT = 300;
const MAX_RUN_LENGTH = 0x1fff;

/** Packet status symbols. */
export const NOT_RECEIVED = 0;
export const SMALL_DELTA = 1;
export const LARGE_DELTA = 2;
export type StatusSymbol = typeof NOT_RECEIVED | typeof SMALL_DELTA | typeof LARGE_DELTA;

/** One feedback message before it is written as bytes. */
export interface TwccFeedback {
  senderSsrc: number;
  mediaSsrc: number;
  baseSequence: number;
  /** Arrival of the first received packet, in 64 ms units (24 bits, wraps). */
  referenceTime: number;
  feedbackCount: number;
  /** One symbol per sequence number from baseSequence on. */
  statuses: StatusSymbol[];
  /** One delta (250 µs ticks) per received packet, in sequence order. */
  deltas: number[];
}

export class TwccRecorder {
  /** Unwrapped sequence number -> arrival time (µs). */
  private readonly arrivals = new Map<number, number>();
  /** Oldest unwrapped number still kept (received or not). */
  private begin = 0;
  /** Newest received unwrapped number + 1; 0 = nothing received yet. */
  private end = 0;
  /** First unwrapped number the next report covers; undefined before the first packet. */
  private windowStart: number | undefined;
  private lastSeq: number | undefined;
  private lastUnwrapped = 0;
  private feedbackCount = 0;
  private mediaSsrc = 0;
  /** Packets that arrived after their number had been culled (too late to report). */
  tooLate = 0;

  constructor(private readonly senderSsrc: number) {}

  /** A packet with transport-wide sequence number `seq` arrived at `arrivalUs`. */
  record(seq: number, arrivalUs: number, ssrc: number): void {
    const s = this.unwrap(seq);
    this.mediaSsrc = ssrc;
    if (this.windowStart === undefined || s - this.end > MAX_SEQUENCE_JUMP || this.begin - s > MAX_SEQUENCE_JUMP) {
      this.reset(seq);
      return this.record(seq, arrivalUs, ssrc);
    }
    if (s < this.begin) {
      this.tooLate++;
      return;
    }
    const windowStart = this.windowStart;
    // Everything received so far was reported: forget what is older than the back window.
    if (this.end <= windowStart) this.cull(Math.min(s, windowStart), arrivalUs - BACK_WINDOW_US);
    if (s < windowStart) this.windowStart = s;
    if (this.arrivals.has(s)) return; // a duplicate: the first arrival counts
    this.arrivals.set(s, arrivalUs);
    if (s >= this.end) this.end = s + 1;
  }

  /** Reports for everything received since the last call (none when nothing new arrived). */
  feedback(): TwccFeedback[] {
    if (this.windowStart === undefined || this.windowStart >= this.end) return [];
    const reports: TwccFeedback[] = [];
    let from = Math.max(this.windowStart, this.begin);
    while (from < this.end) {
      const built = this.build(from);
      if (!built) break;
      reports.push(built.report);
      from = built.next;
    }
    this.windowStart = this.end;
    return reports;
  }

  /** Sequence numbers kept in memory (bounded by the back window). */
  get size(): number {
    return this.arrivals.size;
  }

  private build(from: number): { report: TwccFeedback; next: number } | undefined {
    const statuses: StatusSymbol[] = [];
    const deltas: number[] = [];
    let referenceTime = 0;
    let lastTicks = 0;
    let missing = 0;
    let next = from;
    for (let s = from; s < this.end; s++) {
      const at = this.arrivals.get(s);
      if (at === undefined) {
        missing++;
        continue;
      }
      const ticks = Math.round(at / TICK_US);
      if (deltas.length === 0) {
        const units = Math.floor(at / REFERENCE_UNIT_US);
        referenceTime = units & 0xffffff;
        lastTicks = units * TICKS_PER_REFERENCE_UNIT;
      }
      const delta = ticks - lastTicks;
      if (delta < -0x8000 || delta > 0x7fff || deltas.length >= MAX_RECEIVED_PER_REPORT) break;
      for (; missing > 0; missing--) statuses.push(NOT_RECEIVED);
      statuses.push(delta >= 0 && delta <= 0xff ? SMALL_DELTA : LARGE_DELTA);
      deltas.push(delta);
      lastTicks = ticks;
      next = s + 1;
    }
    if (deltas.length === 0) return undefined;
    const report: TwccFeedback = {
      senderSsrc: this.senderSsrc,
      mediaSsrc: this.mediaSsrc,
      baseSequence: from & 0xffff,
      referenceTime,
      feedbackCount: this.feedbackCount,
      statuses,
      deltas,
    };
    this.feedbackCount = (this.feedbackCount + 1) & 0xff;
    return { report, next };
  }

  /** Drops numbers before `before` that arrived (or were due) before `olderThanUs`. */
  private cull(before: number, olderThanUs: number): void {
    while (this.begin < before) {
      const at = this.arrivals.get(this.begin);
      if (at !== undefined && at > olderThanUs) break;
      this.arrivals.delete(this.begin);
      this.begin++;
    }
  }

  /** Starts over at `seq` (first packet, or a sender that started counting again). */
  private reset(seq: number): void {
    const s = seq + 0x10000; // room below for reordered packets
    this.arrivals.clear();
    this.lastSeq = seq;
    this.lastUnwrapped = s;
    this.begin = s;
    this.end = s;
    this.windowStart = s;
  }

  private unwrap(seq: number): number {
    if (this.lastSeq === undefined) return seq + 0x10000;
    const u = this.lastUnwrapped + seqDelta(this.lastSeq, seq);
    if (u > this.lastUnwrapped) {
      this.lastSeq = seq;
      this.lastUnwrapped = u;
    }
    return u;
  }
}

/**
 * Packet status chunks: a run-length chunk where a run covers at least what a vector chunk
 * would, else a vector chunk of 14 one-bit symbols, or of 7 two-bit symbols when a large
 * delta is among them. Symbols past the end of the last vector are zero (ignored by the
 * reader, which knows the status count).
 */
export function encodeChunks(statuses: readonly StatusSymbol[]): number[] {
  const chunks: number[] = [];
  let i = 0;
  while (i < statuses.length) {
    const s = statuses[i];
    let run = 1;
    while (i + run < statuses.length && statuses[i + run] === s && run < MAX_RUN_LENGTH) run++;
    const twoBit = statuses.slice(i, i + 14).includes(LARGE_DELTA);
    const capacity = twoBit ? 7 : 14;
    if (run >= Math.min(capacity, statuses.length - i)) {
      chunks.push((s << 13) | run);
      i += run;
      continue;
    }
    let chunk = twoBit ? 0xc000 : 0x8000;
    for (let k = 0; k < capacity; k++) {
      const symbol = statuses[i + k] ?? NOT_RECEIVED;
      chunk |= twoBit ? symbol << (2 * (6 - k)) : (symbol & 1) << (13 - k);
    }
    chunks.push(chunk);
    i += capacity;
  }
  return chunks;
}

/** The RTCP transport-layer feedback packet (PT 205, FMT 15), padded to 32 bits. */
export function serializeFeedback(f: TwccFeedback): Buffer {
  const chunks = encodeChunks(f.statuses);
  const deltaBytes = f.deltas.reduce((n, d) => n + (d >= 0 && d <= 0xff ? 1 : 2), 0);
  const unpadded = 20 + 2 * chunks.length + deltaBytes;
  const padding = (4 - (unpadded % 4)) % 4;
  const out = Buffer.alloc(unpadded + padding);
  out[0] = 0x80 | (padding ? 0x20 : 0) | 15;
  out[1] = 205;
  out.writeUInt16BE(out.length / 4 - 1, 2);
  out.writeUInt32BE(f.senderSsrc >>> 0, 4);
  out.writeUInt32BE(f.mediaSsrc >>> 0, 8);
  out.writeUInt16BE(f.baseSequence & 0xffff, 12);
  out.writeUInt16BE(f.statuses.length, 14);
  out.writeUIntBE(f.referenceTime & 0xffffff, 16, 3);
  out[19] = f.feedbackCount & 0xff;
  let o = 20;
  for (const c of chunks) o = out.writeUInt16BE(c, o);
  for (const d of f.deltas) o = d >= 0 && d <= 0xff ? out.writeUInt8(d, o) : out.writeInt16BE(d, o);
  if (padding) out[out.length - 1] = padding;
  return out;
}
