// Repeated bad credentials from one address are slowed down: after `max` failures within
// `windowMs`, that address gets 429 (with how long to wait) until the oldest failure
// leaves the window. Memory is bounded: at most `maxAddresses` addresses are tracked.

export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly maxAddresses = 10_000,
  ) {}

  /** Milliseconds this address must wait, or 0 when it may try. */
  retryAfterMs(address: string, now = Date.now()): number {
    const list = this.prune(address, now);
    return list.length >= this.max ? list[0] + this.windowMs - now : 0;
  }

  fail(address: string, now = Date.now()): void {
    const list = this.prune(address, now);
    list.push(now);
    this.failures.set(address, list);
    if (this.failures.size > this.maxAddresses) this.failures.delete(this.failures.keys().next().value as string);
  }

  private prune(address: string, now: number): number[] {
    const list = (this.failures.get(address) ?? []).filter((t) => t > now - this.windowMs);
    if (list.length === 0) this.failures.delete(address);
    return list;
  }
}
