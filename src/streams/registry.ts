import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { matchesPattern, videoBitrateFor } from '../config/patterns.js';
import type { Config } from '../config/schema.js';
import { EventBus } from '../events/bus.js';
import type { Logger } from '../log.js';
import type { PipelineDefinition } from '../pipelines/definition.js';
import { PortAllocator } from '../rtp/ports.js';
import { parseOffer } from '../sdp/offer.js';
import { PublisherPeer } from '../webrtc/publisher-peer.js';
import { OutputCatalog } from './outputs.js';
import type { Output, OutputInfo } from './output.js';
import { Stream, type OutputRequest, type StreamInfo } from './stream.js';

// The registry of live streams: one publisher per name, created from a WHIP offer and
// removed when it leaves. When a stream goes live it starts the automatic HLS output and
// the outputs the configuration declares for that name. With streams.resumeOutputsSeconds,
// the outputs a REST client started wait that long after the publisher left, and start
// again (same ids) when a publisher returns under the same name.

export { STREAM_NAME } from './names.js';

/** New publishers are refused while the gateway stops (503). */
export class GatewayStopping extends Error {
  constructor() {
    super('the gateway is shutting down');
  }
}

export class StreamBusy extends Error {
  constructor(name: string) {
    super(`stream "${name}" is already being published`);
  }
}

/** Too many offers from one address are still connecting (429). */
export class TooManyConnecting extends Error {
  constructor(address: string, limit: number) {
    super(`${limit} offers from ${address} are still connecting (streams.maxConnectingPerAddress); wait for them to connect or time out`);
  }
}

export interface PublishOptions {
  /** Answer at once and trickle candidates (WebSocket) instead of gathering first (WHIP). */
  trickle?: boolean;
  /** Where the offer came from (the HTTP or WebSocket client's address). */
  from?: string;
}

export interface PublishResult {
  stream: Stream;
  answer: string;
}

export interface RegistryEvents {
  stream: [Stream];
}

export class StreamRegistry extends EventEmitter<RegistryEvents> {
  private readonly streams = new Map<string, Stream>();
  /** Names whose offer is being answered right now (closes the race between two POSTs), and from where. */
  private readonly pending = new Map<string, string | undefined>();
  readonly ports: PortAllocator;
  readonly events = new EventBus();
  readonly outputs: OutputCatalog;
  private shuttingDown = false;
  private gathering: Promise<void> = Promise.resolve();
  /** REST-started outputs of publishers that left, waiting for their return (by stream name). */
  private readonly waiting = new Map<string, { outputs: Map<string, OutputRequest>; timer: NodeJS.Timeout }>();
  /** Streams an operator removed (DELETE /api/streams/:name): their outputs do not wait. */
  private readonly removed = new WeakSet<Stream>();

  constructor(
    private readonly config: Config,
    definitions: Map<string, PipelineDefinition>,
    private readonly log: Logger,
  ) {
    super();
    this.ports = new PortAllocator(config.rtp.portMin, config.rtp.portMax);
    this.outputs = new OutputCatalog(config, definitions, this.events);
  }

  get(name: string): Stream | undefined {
    return this.streams.get(name);
  }

  list(): StreamInfo[] {
    return [...this.streams.values()].map((s) => s.info());
  }

  all(): Stream[] {
    return [...this.streams.values()];
  }

  hlsDir(name: string): string {
    return this.outputs.hlsDir(name);
  }

  /**
   * Answers a WHIP offer. Throws SdpError (400/406), StreamBusy (409) or TooManyConnecting
   * (429). An offer that has not connected yet holds its name only until another offer for
   * the name comes: a stray or abandoned offer cannot keep the real publisher out.
   */
  async publish(name: string, offerText: string, options: PublishOptions = {}): Promise<PublishResult> {
    if (this.shuttingDown) throw new GatewayStopping();
    const offer = parseOffer(offerText); // bad SDP is refused before anything is reserved
    const existing = this.streams.get(name);
    const replace = existing && (existing.state === 'connecting' || this.config.streams.replaceExisting);
    if (this.pending.has(name) || (existing && !replace)) throw new StreamBusy(name);
    this.checkConnectingFrom(options.from);
    this.pending.set(name, options.from);
    try {
      if (existing) await existing.close(existing.state === 'connecting' ? 'replaced by a new offer before it connected' : 'replaced by a new publisher');
      const { peer, answer } = await this.answerSerially(() => PublisherPeer.answer(offer, { ice: this.config.ice, video: videoBitrateFor(this.config.video, name), trickle: options.trickle }));
      const sessionId = randomUUID();
      const stream = new Stream(name, sessionId, peer, {
        ports: this.ports,
        ffmpegPath: this.config.ffmpeg.path,
        stopTimeoutMs: this.config.ffmpeg.stopTimeoutMs,
        timeouts: this.config.ice,
        log: this.log,
      }, options.from);
      this.streams.set(name, stream);
      stream.log.info({ event: 'session-created', tracks: peer.tracks.map((t) => `${t.kind}:${t.name}/${t.payloadType}`) }, 'publisher session created');
      stream.once('closed', (reason) => {
        if (this.streams.get(name) === stream) this.streams.delete(name);
        this.events.publish({ type: 'stream.stopped', stream: name, session: sessionId, reason });
        this.keepForReturn(stream);
      });
      stream.on('live', () => {
        this.events.publish({ type: 'stream.started', stream: name, session: sessionId });
        void this.startConfiguredOutputs(stream, this.takeWaiting(name));
      });
      // HLS starts with the answer, not when ICE/DTLS has connected: ffmpeg takes 0.2-0.5 s
      // to start, and is then already listening when the publisher's first keyframe comes.
      if (this.config.hls.auto) void this.startAutoHls(stream);
      this.emit('stream', stream);
      return { stream, answer };
    } finally {
      this.pending.delete(name);
    }
  }

  /** Refuses an offer when its address already has the most offers connecting at once. */
  private checkConnectingFrom(from: string | undefined): void {
    if (from === undefined) return;
    const limit = this.config.streams.maxConnectingPerAddress;
    const connecting = [...this.streams.values()].filter((s) => s.state === 'connecting' && s.from === from).length;
    const answering = [...this.pending.values()].filter((f) => f === from).length;
    if (connecting + answering >= limit) throw new TooManyConnecting(from, limit);
  }

  /**
   * With a fixed ICE port range, werift picks a free port and binds it a moment later, so
   * two peers gathering at once can pick the same port and one loses its candidate. The
   * gathering is therefore done one peer at a time (a few ms each on a host).
   */
  private answerSerially<T>(make: () => Promise<T>): Promise<T> {
    if (!this.config.ice.portRange) return make();
    const run = this.gathering.then(make, make);
    this.gathering = run.then(() => undefined, () => undefined);
    return run;
  }

  /** Starts an output a REST client asked for, remembered for a returning publisher. */
  async startOutput(stream: Stream, type: string, params: Record<string, unknown>): Promise<Output> {
    const output = await this.outputs.start(stream, type, params);
    stream.requested.set(output.id, { type, params });
    return output;
  }

  private async startAutoHls(stream: Stream): Promise<void> {
    try {
      await this.outputs.start(stream, 'hls', { segmentSeconds: this.config.hls.segmentSeconds, listSize: this.config.hls.listSize });
    } catch (e) {
      if (!stream.closed) stream.log.error({ event: 'output-config-error', type: 'hls', error: (e as Error).message }, 'automatic hls output could not start');
    }
  }

  /**
   * The outputs the configuration declares for this name, and the outputs that waited for
   * this publisher's return (under their old ids).
   */
  private async startConfiguredOutputs(stream: Stream, resumed = new Map<string, OutputRequest>()): Promise<void> {
    const wanted: { type: string; params: Record<string, unknown> }[] = [];
    for (const o of this.config.outputs) if (matchesPattern(o.streams, stream.name)) wanted.push(o);
    for (const o of wanted) {
      try {
        await this.outputs.start(stream, o.type, o.params);
      } catch (e) {
        stream.log.error({ event: 'output-config-error', type: o.type, error: (e as Error).message }, `configured ${o.type} output could not start`);
      }
    }
    for (const [id, o] of resumed) {
      if (stream.outputs.has(id)) continue; // e.g. an hls output the configuration started already
      try {
        await this.outputs.start(stream, o.type, o.params, { id });
        stream.requested.set(id, o);
        stream.log.info({ event: 'output-resumed', output: id, type: o.type }, `${o.type} output started again for the returning publisher`);
      } catch (e) {
        stream.log.error({ event: 'output-resume-error', output: id, type: o.type, error: (e as Error).message }, `${o.type} output could not start again`);
      }
    }
  }

  /** A publisher left: its REST-started outputs wait for a publisher under the same name. */
  private keepForReturn(stream: Stream): void {
    const seconds = this.config.streams.resumeOutputsSeconds;
    if (seconds <= 0 || this.shuttingDown || this.removed.has(stream) || stream.requested.size === 0) return;
    this.takeWaiting(stream.name);
    const timer = setTimeout(() => {
      if (this.waiting.get(stream.name)?.timer !== timer) return;
      this.waiting.delete(stream.name);
      stream.log.info({ event: 'outputs-not-resumed', seconds }, `no publisher returned within ${seconds} s; its outputs end`);
    }, seconds * 1000);
    timer.unref();
    this.waiting.set(stream.name, { outputs: new Map(stream.requested), timer });
    stream.log.info({ event: 'outputs-waiting', outputs: [...stream.requested.keys()], seconds }, `outputs wait ${seconds} s for a publisher to return`);
  }

  /** Outputs waiting for a publisher to return under `name`, as the API shows them. */
  waitingOutputs(name: string): OutputInfo[] {
    const w = this.waiting.get(name);
    return w ? [...w.outputs].map(([id, o]) => ({ id, type: o.type, state: 'waiting', bytesOut: 0, restarts: 0 })) : [];
  }

  /** Drops one waiting output (a REST client stops it while the publisher is away). */
  cancelWaiting(name: string, id: string): boolean {
    const w = this.waiting.get(name);
    if (!w?.outputs.delete(id)) return false;
    if (w.outputs.size === 0) this.takeWaiting(name);
    return true;
  }

  /** The outputs waiting for `name` (removed from the waiting list), if any. */
  private takeWaiting(name: string): Map<string, OutputRequest> | undefined {
    const w = this.waiting.get(name);
    if (!w) return undefined;
    clearTimeout(w.timer);
    this.waiting.delete(name);
    return w.outputs;
  }

  /** Ends a publisher's session (DELETE on the WHIP resource). */
  async unpublish(name: string, sessionId?: string): Promise<boolean> {
    const stream = this.streams.get(name);
    if (!stream || (sessionId !== undefined && stream.sessionId !== sessionId)) return false;
    await stream.close('publisher ended the session');
    return true;
  }

  /** An operator ends a stream (DELETE /api/streams/:name): its outputs do not wait for a return. */
  async remove(name: string): Promise<boolean> {
    const stream = this.streams.get(name);
    if (!stream) return false;
    this.removed.add(stream);
    await stream.close('removed over the API');
    return true;
  }

  /** Stops every stream and output; ffmpeg processes finish their files. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (const name of [...this.waiting.keys()]) this.takeWaiting(name);
    await Promise.all([...this.streams.values()].map((s) => s.close('gateway shutting down')));
    this.outputs.close();
  }

  /** PIDs of running ffmpeg processes (health, tests). */
  ffmpegPids(): number[] {
    return this.all().flatMap((s) => [...s.outputs.values()].map((o) => o.pid).filter((p): p is number => p !== undefined));
  }
}
