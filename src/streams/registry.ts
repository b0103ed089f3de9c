import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { PipelineDefinition } from '../pipelines/definition.js';
import { resolveParams } from '../pipelines/definition.js';
import { PortAllocator } from '../rtp/ports.js';
import { parseOffer } from '../sdp/offer.js';
import { PublisherPeer } from '../webrtc/publisher-peer.js';
import { Stream, type StreamInfo } from './stream.js';

// The registry of live streams: one publisher per name, created from a WHIP offer and
// removed when it leaves. It also starts the automatic HLS output and tidies HLS folders
// of ended streams after the grace period.

export const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export class StreamBusy extends Error {
  constructor(name: string) {
    super(`stream "${name}" is already being published`);
  }
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
  /** Names whose offer is being answered right now (closes the race between two POSTs). */
  private readonly pending = new Set<string>();
  private readonly cleanups = new Map<string, NodeJS.Timeout>();
  readonly ports: PortAllocator;
  private shuttingDown = false;

  constructor(
    private readonly config: Config,
    readonly definitions: Map<string, PipelineDefinition>,
    private readonly log: Logger,
  ) {
    super();
    this.ports = new PortAllocator(config.rtp.portMin, config.rtp.portMax);
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
    return path.resolve(this.config.dataDir, 'hls', name);
  }

  /** Answers a WHIP offer. Throws SdpError (400/406) or StreamBusy (409). */
  async publish(name: string, offerText: string): Promise<PublishResult> {
    if (this.shuttingDown) throw new Error('gateway is shutting down');
    const offer = parseOffer(offerText); // bad SDP is refused before anything is reserved
    const existing = this.streams.get(name);
    if (this.pending.has(name) || (existing && !this.config.streams.replaceExisting)) throw new StreamBusy(name);
    this.pending.add(name);
    try {
      if (existing) await existing.close('replaced by a new publisher');
      const { peer, answer } = await PublisherPeer.answer(offer, this.config.ice);
      const sessionId = randomUUID();
      const stream = new Stream(name, sessionId, peer, {
        ports: this.ports,
        ffmpegPath: this.config.ffmpeg.path,
        stopTimeoutMs: this.config.ffmpeg.stopTimeoutMs,
        timeouts: this.config.ice,
        log: this.log,
      });
      this.streams.set(name, stream);
      stream.log.info({ event: 'session-created', tracks: peer.tracks.map((t) => `${t.kind}:${t.name}/${t.payloadType}`) }, 'publisher session created');
      stream.once('closed', () => {
        if (this.streams.get(name) === stream) this.streams.delete(name);
      });
      stream.on('live', () => {
        if (this.config.hls.auto) void this.startHls(stream);
      });
      this.emit('stream', stream);
      return { stream, answer };
    } finally {
      this.pending.delete(name);
    }
  }

  /** Starts the HLS output of a stream (id "hls"), in data/hls/<name>/. */
  async startHls(stream: Stream, params: Record<string, unknown> = {}): Promise<void> {
    const def = this.definitions.get('hls');
    if (!def || stream.closed || stream.outputs.has('hls')) return;
    const dir = this.hlsDir(stream.name);
    const pendingCleanup = this.cleanups.get(dir);
    if (pendingCleanup) clearTimeout(pendingCleanup);
    this.cleanups.delete(dir);
    await rm(dir, { recursive: true, force: true }); // an earlier session's segments must not mix in
    await mkdir(dir, { recursive: true });
    const audio = stream.tracks.find((t) => t.kind === 'audio');
    const values = {
      ...resolveParams(def, { segmentSeconds: this.config.hls.segmentSeconds, listSize: this.config.hls.listSize, ...params }),
      audioChannels: audio?.codec.channels ?? 2,
      audioBitrate: audio?.codec.channels === 2 ? '128k' : '96k',
    };
    const output = stream.addOutput(def, dir, values, 'hls');
    output.on('state', (state) => {
      if (state === 'stopped' || state === 'failed') this.scheduleCleanup(dir);
    });
  }

  private scheduleCleanup(dir: string): void {
    const old = this.cleanups.get(dir);
    if (old) clearTimeout(old);
    const timer = setTimeout(() => {
      this.cleanups.delete(dir);
      void rm(dir, { recursive: true, force: true });
    }, this.config.hls.cleanupAfterSeconds * 1000);
    timer.unref();
    this.cleanups.set(dir, timer);
  }

  /** Ends a publisher (DELETE on the WHIP resource or the API). */
  async unpublish(name: string, sessionId?: string): Promise<boolean> {
    const stream = this.streams.get(name);
    if (!stream || (sessionId !== undefined && stream.sessionId !== sessionId)) return false;
    await stream.close('publisher ended the session');
    return true;
  }

  /** Stops every stream and output; ffmpeg processes finish their files. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    await Promise.all([...this.streams.values()].map((s) => s.close('gateway shutting down')));
    for (const t of this.cleanups.values()) clearTimeout(t);
  }

  /** PIDs of running ffmpeg processes (health, tests). */
  ffmpegPids(): number[] {
    return this.all().flatMap((s) => [...s.outputs.values()].map((o) => o.pid).filter((p): p is number => p !== undefined));
  }
}
