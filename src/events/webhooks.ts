import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { EventBus, GatewayEvent } from './bus.js';

// Delivers gateway events as JSON POSTs to the configured URLs, with a timeout per try
// and retries with back-off. A slow or broken receiver never holds up the gateway. In a
// cluster each node delivers its own events only (the others' reach it through Redis
// and are theirs to deliver), so every event is delivered once.

export class Webhooks {
  private stopped = false;
  private readonly inFlight = new Set<Promise<void>>();
  delivered = 0;
  failed = 0;

  constructor(
    private readonly config: Config['webhooks'],
    bus: EventBus,
    private readonly log: Logger,
  ) {
    if (config.urls.length === 0) return;
    bus.on('event', (e) => {
      if (this.stopped || !bus.isLocal(e) || (config.events.length && !config.events.includes(e.type))) return;
      for (const url of config.urls) {
        const p = this.deliver(url, e).finally(() => this.inFlight.delete(p));
        this.inFlight.add(p);
      }
    });
  }

  private async deliver(url: string, e: GatewayEvent): Promise<void> {
    const body = JSON.stringify(e);
    for (let attempt = 0; attempt <= this.config.retries; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 1000 * 2 ** (attempt - 1)).unref());
      if (this.stopped && attempt > 0) break;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'User-Agent': 'webrtc-rtp-gateway' },
          body,
          signal: AbortSignal.timeout(this.config.timeoutMs),
        });
        if (res.ok) {
          this.delivered++;
          return;
        }
        this.log.warn({ event: 'webhook', url, type: e.type, status: res.status, attempt }, 'webhook refused');
      } catch (err) {
        this.log.warn({ event: 'webhook', url, type: e.type, error: (err as Error).message, attempt }, 'webhook failed');
      }
    }
    this.failed++;
  }

  /** Waits (briefly) for deliveries under way, e.g. the last stream.stopped on shutdown. */
  async stop(waitMs = 2000): Promise<void> {
    this.stopped = true;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => setTimeout(r, waitMs).unref())]);
  }
}
