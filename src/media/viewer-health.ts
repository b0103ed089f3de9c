// Whether a WHEP viewer's link carries what it is sent, read from what the viewer reports:
// its receiver reports (the share of packets lost since the last one, RFC 3550) and its
// transport-wide congestion feedback (which packets arrived, and when: a queue building up
// on its path shows as packets arriving later and later than they were sent). Nothing is
// done to the stream for one viewer (one layer, no simulcast): a viewer that cannot keep
// up is shown in the API and on the dashboard, and its own browser copes (NACK, PLI).

/** A transport-cc feedback packet as werift parses it (its own packetResults skips status vector chunks, which Chromium sends). */
export interface TwccFeedback {
  baseSequenceNumber: number;
  packetStatusCount: number;
  /** Multiples of 64 ms. */
  referenceTime: number;
  packetChunks: ({ runLength: number; packetStatus: number } | { symbolList: number[] })[];
  /** Microseconds each. */
  recvDeltas: { delta: number }[];
}

export interface TwccResult {
  sequenceNumber: number;
  received: boolean;
  /** On the viewer's clock (ms). */
  receivedAtMs: number;
}

/** Which packets a feedback reports, and when the received ones arrived (RFC draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1). */
export function twccResults(fb: TwccFeedback): TwccResult[] {
  const statuses: number[] = [];
  for (const c of fb.packetChunks) {
    if ('symbolList' in c) statuses.push(...c.symbolList);
    else for (let i = 0; i < c.runLength && statuses.length < fb.packetStatusCount; i++) statuses.push(c.packetStatus);
    if (statuses.length >= fb.packetStatusCount) break;
  }
  statuses.length = Math.min(statuses.length, fb.packetStatusCount);
  const out: TwccResult[] = [];
  let at = fb.referenceTime * 64;
  let d = 0;
  for (const [i, status] of statuses.entries()) {
    const received = status === 1 || status === 2;
    if (received) at += (fb.recvDeltas[d++]?.delta ?? 0) / 1000;
    out.push({ sequenceNumber: (fb.baseSequenceNumber + i) & 0xffff, received, receivedAtMs: at });
  }
  return out;
}

/** Loss above this share (either source) marks a viewer that cannot keep up. */
export const LOSS_LIMIT = 0.1;
/** A queue this long on the viewer's path (ms) marks one too. */
export const QUEUE_LIMIT_MS = 400;
/** How long the transport-cc figures look back. */
const WINDOW_MS = 3000;
/** Sent times kept for transport-wide sequence numbers. */
const SENT_SLOTS = 8192;

export class ViewerHealth {
  /** Smoothed receiver-report loss, 0-1. */
  private reportLoss: number | undefined;
  private readonly sentAt = new Float64Array(SENT_SLOTS);
  private readonly sentSeq = new Int32Array(SENT_SLOTS).fill(-1);
  /** transport-cc results in the window: when read, whether it arrived, its one-way delay (arbitrary origin). */
  private results: { at: number; received: boolean; delay?: number }[] = [];
  /** The least one-way delay seen lately (the path without a queue). */
  private baseDelay: { value: number; at: number } | undefined;

  /** A packet with transport-wide number `seq` went out at `at` (performance.now()). */
  sent(seq: number, at: number): void {
    const i = seq % SENT_SLOTS;
    this.sentAt[i] = at;
    this.sentSeq[i] = seq;
  }

  /** A receiver report's fraction lost (0-1). */
  report(fractionLost: number): void {
    this.reportLoss = this.reportLoss === undefined ? fractionLost : 0.7 * this.reportLoss + 0.3 * fractionLost;
  }

  /** transport-cc results: sequence number, whether it arrived, when (ms, the viewer's clock). */
  feedback(results: TwccResult[], now: number): void {
    for (const r of results) {
      const i = r.sequenceNumber % SENT_SLOTS;
      if (this.sentSeq[i] !== r.sequenceNumber) continue;
      const delay = r.received ? r.receivedAtMs - this.sentAt[i] : undefined;
      this.results.push({ at: now, received: r.received, delay });
      if (delay !== undefined && (!this.baseDelay || delay <= this.baseDelay.value || now - this.baseDelay.at > 10 * WINDOW_MS)) this.baseDelay = { value: delay, at: now };
    }
    const from = now - WINDOW_MS;
    let drop = 0;
    while (drop < this.results.length && this.results[drop].at < from) drop++;
    if (drop) this.results = this.results.slice(drop);
  }

  /** The share of packets lost lately (0-100), from transport-cc where there is any, else receiver reports. */
  get lossPercent(): number | undefined {
    if (this.results.length >= 20) return (100 * this.results.filter((r) => !r.received).length) / this.results.length;
    return this.reportLoss === undefined ? undefined : 100 * this.reportLoss;
  }

  /** How much later than at their best the last second's packets arrived (median), ms. */
  get queueDelayMs(): number | undefined {
    if (!this.baseDelay) return undefined;
    const last = this.results.at(-1)?.at ?? 0;
    const recent = this.results.filter((r) => r.delay !== undefined && r.at >= last - 1000).map((r) => r.delay! - this.baseDelay!.value);
    if (recent.length === 0) return undefined;
    recent.sort((a, b) => a - b);
    return Math.max(0, Math.round(recent[Math.floor(recent.length / 2)]));
  }

  get keepingUp(): boolean {
    const loss = this.lossPercent;
    const reportLoss = this.reportLoss ?? 0;
    return (loss === undefined || loss < LOSS_LIMIT * 100) && reportLoss < LOSS_LIMIT && (this.queueDelayMs ?? 0) < QUEUE_LIMIT_MS;
  }
}
