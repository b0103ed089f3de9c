import type { CloseCause } from '../streams/close-cause.js';
import type { Output, OutputInfo } from '../streams/output-contract.js';
import type { StreamRegistry } from '../streams/registry.js';
import type { Stream } from '../streams/stream.js';
import type { OutputCatalog } from './catalog.js';

// Outputs a REST client started are remembered (here, per stream). With
// streams.resumeOutputsSeconds, when the publisher leaves they wait that long (listed as
// "waiting", and can be cancelled), and start again under their old ids when a publisher
// returns under the same name. Not when an operator removed the stream, nor when the
// gateway stops (the stream's close cause says which).
//
// In a cluster a publisher may come back on another node (its node died, or was full):
// the outputs are also kept in a ResumeStore (the cluster's Redis), where the node it
// returns to finds them.

/** An output as a REST client asked for it (kept to start it again for a returning publisher). */
export interface OutputRequest {
  type: string;
  params: Record<string, unknown>;
}

/** Where a cluster keeps a stream's REST-started outputs for a publisher returning on any node. */
export interface ResumeStore {
  save(name: string, outputs: [string, OutputRequest][]): void;
  /** The outputs kept for `name`, taken (only one node gets them). */
  take(name: string): Promise<[string, OutputRequest][] | undefined>;
  /** The stream ended here; `drop`: its outputs are not to wait (an operator removed it). */
  forget(name: string, drop: boolean): void;
}

/** Ends after which the outputs do not wait for a return. */
const NO_RETURN: CloseCause[] = ['removed', 'shutdown'];

export class ResumeOutputs {
  private readonly waiting = new Map<string, { outputs: Map<string, OutputRequest>; timer: NodeJS.Timeout }>();
  /** Outputs started over REST and not stopped since, by stream and id. */
  private readonly requested = new WeakMap<Stream, Map<string, OutputRequest>>();

  constructor(
    registry: StreamRegistry,
    private readonly catalog: OutputCatalog,
    private readonly seconds: number,
    private readonly store?: ResumeStore,
  ) {
    registry.on('stream', (stream) => stream.once('closed', () => this.keepForReturn(stream)));
  }

  /** Starts an output a REST client asked for, remembered for a returning publisher. */
  async start(stream: Stream, type: string, params: Record<string, unknown>): Promise<Output> {
    const output = await this.catalog.start(stream, type, params);
    this.requestedOf(stream).set(output.id, { type, params });
    this.store?.save(stream.name, [...this.requestedOf(stream)]);
    return output;
  }

  /** Stops an output a client asked to stop (on the live stream, or one waiting for its publisher). */
  async stop(name: string, stream: Stream | undefined, id: string): Promise<boolean> {
    if (stream && (await stream.removeOutput(id))) {
      this.requested.get(stream)?.delete(id);
      this.store?.save(stream.name, [...this.requestedOf(stream)]);
      return true;
    }
    return this.cancel(name, id);
  }

  private requestedOf(stream: Stream): Map<string, OutputRequest> {
    let m = this.requested.get(stream);
    if (!m) this.requested.set(stream, (m = new Map()));
    return m;
  }

  /** The outputs that waited for this publisher, started again under their ids. */
  async resume(stream: Stream): Promise<void> {
    const waiting = this.take(stream.name) ?? (await this.store?.take(stream.name));
    for (const [id, o] of waiting ?? []) {
      if (stream.outputs.has(id)) continue; // e.g. an hls output the configuration started already
      try {
        await this.catalog.start(stream, o.type, o.params, { id });
        this.requestedOf(stream).set(id, o);
        this.store?.save(stream.name, [...this.requestedOf(stream)]);
        stream.log.info({ event: 'output-resumed', output: id, type: o.type }, `${o.type} output started again for the returning publisher`);
      } catch (e) {
        stream.log.error({ event: 'output-resume-error', output: id, type: o.type, error: (e as Error).message }, `${o.type} output could not start again`);
      }
    }
  }

  /** Outputs waiting for a publisher to return under `name`, as the API shows them. */
  list(name: string): OutputInfo[] {
    const w = this.waiting.get(name);
    return w ? [...w.outputs].map(([id, o]) => ({ id, type: o.type, state: 'waiting', bytesOut: 0, restarts: 0 })) : [];
  }

  /** Drops one waiting output (a REST client stops it while the publisher is away). */
  private cancel(name: string, id: string): boolean {
    const w = this.waiting.get(name);
    if (!w?.outputs.delete(id)) return false;
    if (w.outputs.size === 0) this.take(name);
    return true;
  }

  close(): void {
    for (const name of [...this.waiting.keys()]) this.take(name);
  }

  /** A publisher left: its REST-started outputs wait for a publisher under the same name. */
  private keepForReturn(stream: Stream): void {
    const seconds = this.seconds;
    const requested = this.requested.get(stream);
    this.store?.forget(stream.name, stream.end?.cause === 'removed');
    if (seconds <= 0 || !requested?.size || NO_RETURN.includes(stream.end?.cause ?? 'shutdown')) return;
    this.take(stream.name);
    const timer = setTimeout(() => {
      if (this.waiting.get(stream.name)?.timer !== timer) return;
      this.waiting.delete(stream.name);
      stream.log.info({ event: 'outputs-not-resumed', seconds }, `no publisher returned within ${seconds} s; its outputs end`);
    }, seconds * 1000);
    timer.unref();
    this.waiting.set(stream.name, { outputs: new Map(requested), timer });
    stream.log.info({ event: 'outputs-waiting', outputs: [...requested.keys()], seconds }, `outputs wait ${seconds} s for a publisher to return`);
  }

  /** The outputs waiting for `name` (removed from the waiting list), if any. */
  private take(name: string): Map<string, OutputRequest> | undefined {
    const w = this.waiting.get(name);
    if (!w) return undefined;
    clearTimeout(w.timer);
    this.waiting.delete(name);
    return w.outputs;
  }
}
