// Bytes and events over the last two seconds, in 100 ms slots: a packet costs two
// additions, with no allocation and no array shifting (the old per-packet arrays did
// both, on every one of a busy worker's tens of thousands of packets a second).

const SLOT_MS = 100;
const SLOTS = 20;
export const RATE_WINDOW_MS = SLOT_MS * SLOTS;

export class RateWindow {
  private readonly bytes = new Float64Array(SLOTS);
  private readonly counts = new Uint32Array(SLOTS);
  /** The slot (time / SLOT_MS) the newest entries went into. */
  private slot = -Infinity;

  add(now: number, bytes = 0): void {
    const i = this.advance(now);
    this.bytes[i] += bytes;
    this.counts[i]++;
  }

  /** kbit/s over the window. */
  kbps(now: number): number {
    this.advance(now);
    let sum = 0;
    for (const b of this.bytes) sum += b;
    return Math.round((sum * 8) / RATE_WINDOW_MS);
  }

  /** Events per second over the window. */
  perSecond(now: number): number {
    this.advance(now);
    let sum = 0;
    for (const c of this.counts) sum += c;
    return Math.round((sum * 1000) / RATE_WINDOW_MS);
  }

  /** Empties the slots that time has passed since the last entry; returns the current one. */
  private advance(now: number): number {
    const slot = Math.floor(now / SLOT_MS);
    if (slot !== this.slot) {
      const stale = Math.min(slot - this.slot, SLOTS);
      for (let k = 1; k <= stale; k++) {
        const i = (((slot - stale + k) % SLOTS) + SLOTS) % SLOTS;
        this.bytes[i] = 0;
        this.counts[i] = 0;
      }
      this.slot = slot;
    }
    return ((slot % SLOTS) + SLOTS) % SLOTS;
  }
}
