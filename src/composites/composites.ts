import path from 'node:path';
import type { CompositeSpec, Config } from '../config/schema.js';
import { matchesPattern } from '../config/wildcard.js';
import type { Logger } from '../log.js';
import { aacCodec } from '../outputs/shared-aac.js';
import type { ChosenCodec } from '../webrtc/codec-policy.js';
import { levelOf, transcodeKbps, TRANSCODED_H264 } from '../outputs/shared-h264.js';
import { ProcessCpu } from '../pipelines/process-cpu.js';
import type { PortAllocator } from '../rtp/ports.js';
import type { StreamEnd } from '../streams/close-cause.js';
import { PublishRefused } from '../streams/publish-refused.js';
import type { StreamRegistry } from '../streams/registry.js';
import type { CompositeMark, Stream, StreamEncoder } from '../streams/stream.js';
import type { EncoderInfo } from '../streams/track-view.js';
import { Compositor, type CompositeTargets } from './compositor.js';
import type { CompositeInfo, CompositePatch } from './schemas.js';
import { LevelReader, SpeakerChoice } from './speaker.js';

// Composites: calls broadcast as one programme. A composite is a stream (registered in the
// StreamRegistry under its own name, so HLS, /live, /watch, every output, events and
// metrics work on it unchanged) whose media the gateway makes: one compositor ffmpeg
// (compositor.ts) composes its participants' pictures and mixes their sound, and sends
// H.264, AAC (for the outputs) and Opus (for WHEP viewers) back to the composite's media
// session, a session without a peer.
//
// Participants are the live streams whose names match its `streams` (names or patterns),
// in the order they joined, streams that start later included. The composite's stream
// exists while it has at least one participant; with none it ends as a publisher's
// stream does, and its outputs wait for a return as they do for a publisher
// (streams.resumeOutputsSeconds).
//
// A join, a leave, a new speaker or a new layout starts a new compositor next to the
// running one (a moment later: changes that come together are taken together); the
// composite's tracks take the new one's packets from its first on (media/media-track.ts:
// its first picture is a keyframe), the outputs' forwarders keep their sequence numbers
// and timestamps going, and the old compositor stops once the new one's pictures flow.
// The playlist and a recording go on through it.

/** The composite's mix as Opus: what its WHEP viewers hear (browsers take no AAC). */
const COMPOSITE_OPUS: ChosenCodec = { kind: 'audio', index: -1, name: 'opus', payloadType: 111, clockRate: 48000, channels: 2, fmtp: { minptime: '10', useinbandfec: '1' } };

export class CompositeError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 503,
    message: string,
  ) {
    super(message);
  }
}

export interface CompositesDeps {
  registry: StreamRegistry;
  ports: PortAllocator;
  log: Logger;
  config: Pick<Config, 'composites' | 'transcode' | 'hls' | 'dataDir' | 'ffmpeg'>;
}

/** Changes that come within this long of each other make one new compositor. */
const SETTLE_MS = 250;
/** How often audio levels are read for the speaker layout. */
const LEVELS_EVERY_MS = 300;
/**
 * A new compositor that has written nothing this long after its start is given up while
 * the one it was to replace goes on (a busy machine can take seconds to start one).
 */
const REPLACE_WAIT_MS = 15_000;
/**
 * The composite's stream ends when no media came from its compositors for this long
 * (a publisher's stream: ice.mediaTimeoutMs, 5 s). A compositor that dies is started again
 * here, with back-off, so the stream waits longer for it than for a publisher.
 */
const COMPOSITE_MEDIA_TIMEOUT_MS = 30_000;
const CPU_SAMPLE_MS = 2000;

class Composite {
  spec: CompositeSpec;
  readonly participants: Stream[] = [];
  stream: Stream | undefined;
  targets: CompositeTargets | undefined;
  current: Compositor | undefined;
  readonly replaced = new Set<Compositor>();
  /** Compositors started so far (the first, then one per change). */
  runs = 0;
  restarts = 0;
  failuresInARow = 0;
  removed = false;
  readonly speaker: SpeakerChoice;
  readonly levels = new LevelReader();
  readonly cpu = new ProcessCpu();
  settle: NodeJS.Timeout | undefined;
  timers: NodeJS.Timeout[] = [];
  /** One change at a time. */
  queue: Promise<void> = Promise.resolve();

  constructor(spec: CompositeSpec, holdMs: number) {
    this.spec = spec;
    this.speaker = new SpeakerChoice({ holdMs });
  }

  matches(stream: Stream): boolean {
    return !stream.composite && stream.name !== this.spec.name && this.spec.streams.some((p) => matchesPattern(p, stream.name));
  }

  mark(): CompositeMark {
    const speaker = this.spec.layout === 'speaker' ? this.speakerName() : undefined;
    return { layout: this.spec.layout, participants: this.participants.map((p) => p.name), ...(speaker ? { speaker } : {}) };
  }

  speakerName(): string | undefined {
    return this.speaker.speaker ?? this.participants[0]?.name;
  }

  encoderInfo(): EncoderInfo {
    const c = this.current;
    const state = !c ? 'stopped' : c.pid !== undefined ? 'running' : 'starting';
    const cpuPercent = c ? this.cpu.percent : undefined;
    return { pipeline: 'composite', state, ...(cpuPercent !== undefined ? { cpuPercent } : {}), restarts: this.restarts, resizes: Math.max(0, this.runs - 1 - this.restarts) };
  }

  pids(): number[] {
    return [this.current, ...this.replaced].map((c) => c?.pid).filter((p): p is number => p !== undefined);
  }

  async stopCompositors(): Promise<void> {
    const all = [this.current, ...this.replaced].filter((c): c is Compositor => c !== undefined);
    this.current = undefined;
    this.replaced.clear();
    await Promise.all(all.map((c) => c.stop()));
  }
}

export class Composites {
  private readonly composites = new Map<string, Composite>();
  private closing = false;
  private readonly cpuTimer: NodeJS.Timeout;

  constructor(private readonly deps: CompositesDeps) {
    deps.registry.on('stream', (stream) => {
      if (stream.composite) return;
      stream.once('live', () => this.joined(stream));
      // At once, not once its outputs have finished their files: the compositor reading it is stalled meanwhile.
      stream.once('closing', () => this.left(stream));
    });
    this.cpuTimer = setInterval(() => {
      for (const c of this.composites.values()) c.cpu.sample(c.current?.pid);
    }, CPU_SAMPLE_MS);
    this.cpuTimer.unref();
  }

  /** The composites the configuration declares (composites.declared). */
  startDeclared(): void {
    for (const spec of this.deps.config.composites.declared) {
      try {
        this.create(spec);
      } catch (e) {
        this.deps.log.error({ event: 'composite-config-error', composite: spec.name, error: (e as Error).message }, `declared composite ${spec.name} could not start`);
      }
    }
  }

  list(): CompositeInfo[] {
    return [...this.composites.values()].map((c) => this.info(c));
  }

  get(name: string): CompositeInfo | undefined {
    const c = this.composites.get(name);
    return c && this.info(c);
  }

  /** Throws CompositeError: 409 for a name taken or too many participants, 503 at composites.maxConcurrent. */
  create(spec: CompositeSpec): CompositeInfo {
    const { maxConcurrent } = this.deps.config.composites;
    if (this.closing) throw new CompositeError(503, 'the gateway is shutting down');
    if (this.composites.has(spec.name)) throw new CompositeError(409, `composite "${spec.name}" exists already`);
    if (this.deps.registry.get(spec.name)) throw new CompositeError(409, `stream "${spec.name}" is being published: a composite needs a name of its own`);
    if (this.composites.size >= maxConcurrent) throw new CompositeError(503, `${maxConcurrent} composite(s) exist already (composites.maxConcurrent): each runs a compositor ffmpeg; delete one or raise the limit`);
    const c = new Composite(spec, this.deps.config.composites.speakerHoldSeconds * 1000);
    this.checkParticipants(c, this.matching(c).length);
    this.composites.set(spec.name, c);
    for (const s of this.matching(c)) c.participants.push(s);
    this.deps.log.info({ event: 'composite-created', composite: spec.name, streams: spec.streams, layout: spec.layout, participants: c.participants.map((p) => p.name) }, `composite ${spec.name} created`);
    if (spec.layout === 'speaker') this.watchLevels(c);
    if (c.participants.length) this.schedule(c, 0);
    return this.info(c);
  }

  /** Changes layout, streams or size; throws CompositeError (404, 409). */
  patch(name: string, change: CompositePatch): CompositeInfo {
    const c = this.composites.get(name);
    if (!c) throw new CompositeError(404, `no composite named ${name}`);
    const next = { ...c.spec, ...change };
    const probe = new Composite(next, 0);
    if (change.streams) this.checkParticipants(c, this.matching(probe, true).length);
    const wasSpeaker = c.spec.layout === 'speaker';
    c.spec = next;
    if (change.streams) {
      for (const p of [...c.participants]) if (!c.matches(p)) c.participants.splice(c.participants.indexOf(p), 1);
      for (const s of this.matching(c)) c.participants.push(s);
    }
    if (next.layout === 'speaker' && !wasSpeaker) this.watchLevels(c);
    this.deps.log.info({ event: 'composite-changed', composite: name, change }, `composite ${name} changed`);
    this.schedule(c, 0);
    return this.info(c);
  }

  /** Ends a composite and its stream (outputs do not wait for a return). */
  async remove(name: string): Promise<boolean> {
    const c = this.composites.get(name);
    if (!c) return false;
    this.composites.delete(name);
    c.removed = true;
    for (const t of c.timers) clearInterval(t);
    clearTimeout(c.settle);
    await c.queue;
    await c.stream?.close('removed', 'the composite was deleted');
    await c.stopCompositors();
    this.deps.log.info({ event: 'composite-removed', composite: name }, `composite ${name} removed`);
    return true;
  }

  /** The gateway stops: every compositor stops (the registry ends the composites' streams). */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.cpuTimer);
    await Promise.all([...this.composites.keys()].map((n) => this.remove(n)));
  }

  /** The live streams that match `c` and are not in it yet, in the order they went live. */
  private matching(c: Composite, all = false): Stream[] {
    return this.deps.registry
      .all()
      .filter((s) => s.state === 'live' && !s.closed && c.matches(s) && (all || !c.participants.includes(s)))
      .sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
  }

  private checkParticipants(c: Composite, count: number): void {
    const max = this.deps.config.composites.maxParticipants;
    if (count > max) throw new CompositeError(409, `${count} live streams match ${JSON.stringify(c.spec.streams)}, more than composites.maxParticipants (${max}): name fewer streams`);
  }

  private joined(stream: Stream): void {
    for (const c of this.composites.values()) {
      if (!c.matches(stream) || c.participants.includes(stream)) continue;
      if (c.participants.length >= this.deps.config.composites.maxParticipants) {
        this.deps.log.warn({ event: 'composite-full', composite: c.spec.name, stream: stream.name }, `${stream.name} does not join composite ${c.spec.name}: it has composites.maxParticipants participants`);
        continue;
      }
      c.participants.push(stream);
      this.deps.log.info({ event: 'composite-join', composite: c.spec.name, stream: stream.name }, `${stream.name} joins composite ${c.spec.name}`);
      this.schedule(c);
    }
  }

  private left(stream: Stream): void {
    for (const c of this.composites.values()) {
      const i = c.participants.indexOf(stream);
      if (i < 0) continue;
      c.participants.splice(i, 1);
      this.deps.log.info({ event: 'composite-leave', composite: c.spec.name, stream: stream.name }, `${stream.name} leaves composite ${c.spec.name}`);
      // A place came free: a live stream that found the composite full joins now.
      const waiting = this.matching(c).filter((s) => s !== stream && !s.closed);
      while (waiting.length && c.participants.length < this.deps.config.composites.maxParticipants) c.participants.push(waiting.shift()!);
      this.schedule(c, 0); // its input has stopped: the running compositor waits for it
    }
  }

  private schedule(c: Composite, afterMs = SETTLE_MS): void {
    if (c.removed) return;
    clearTimeout(c.settle);
    c.settle = setTimeout(() => {
      c.queue = c.queue.then(() => this.recompose(c)).catch((e: unknown) => this.deps.log.error({ composite: c.spec.name, error: (e as Error).message }, 'composite change failed'));
    }, afterMs);
  }

  /** A new compositor for the composite as it is now, next to the running one; or its stream ends (no participant left). */
  private async recompose(c: Composite): Promise<void> {
    if (c.removed || this.closing) return;
    if (c.participants.length === 0) {
      const stream = c.stream;
      c.stream = undefined;
      await stream?.close('left', 'every participant of the composite left');
      await c.stopCompositors();
      return;
    }
    if (!c.stream && !(await this.adopt(c))) return;
    const { config, ports, log } = this.deps;
    const { width, height, fps } = c.spec;
    const speaker = c.spec.layout === 'speaker' ? Math.max(0, c.participants.findIndex((p) => p.name === c.speakerName())) : undefined;
    const run = c.runs++;
    const compositor = new Compositor(
      {
        name: c.spec.name,
        dir: path.resolve(config.dataDir, 'outputs', c.spec.name, `composite-${run}`),
        participants: c.participants.filter((p) => !p.closed),
        layout: c.spec.layout,
        size: { width, height },
        fps,
        ...(speaker !== undefined ? { speaker } : {}),
        targets: c.targets!,
        encoder: {
          level: levelOf(TRANSCODED_H264),
          keyframeSeconds: config.hls.segmentSeconds,
          videoKbps: transcodeKbps({ width, height }, { videoKbps: config.transcode.videoKbps, maxHeight: height }),
          preset: config.transcode.preset,
        },
      },
      { ports, ffmpegPath: config.ffmpeg.path, log },
    );
    const previous = c.current;
    if (previous) c.replaced.add(previous);
    c.current = compositor;
    compositor.once('died', () => {
      if (c.current !== compositor) return;
      c.restarts++;
      c.failuresInARow++;
      this.schedule(c, Math.min(500 * 2 ** (c.failuresInARow - 1), 10_000));
    });
    log.info({ event: 'composite-compose', composite: c.spec.name, run, layout: c.spec.layout, participants: c.participants.map((p) => p.name), speaker: c.mark().speaker }, `composite ${c.spec.name}: compositor ${run}`);
    await compositor.start();
    void this.retire(c, compositor, previous);
  }

  /**
   * The replaced compositor stops once the new one has written pictures. A new one that
   * has written nothing within REPLACE_WAIT_MS while the previous one still runs is given
   * up (the previous one goes on) and the change is tried again with back-off; without a
   * previous one it is waited for (it dies or writes).
   */
  private async retire(c: Composite, next: Compositor, previous: Compositor | undefined): Promise<void> {
    const startedAt = performance.now();
    const deadline = startedAt + REPLACE_WAIT_MS;
    const waiting = () => next.outputSeconds === 0 && c.current === next && (previous ? performance.now() < deadline : next.pid !== undefined || performance.now() < startedAt + 2000);
    while (waiting()) await delay(50);
    if (c.current !== next) return;
    if (next.outputSeconds === 0 && next.pid === undefined) return; // it died: the 'died' handler starts another
    if (next.outputSeconds === 0) {
      c.restarts++;
      c.failuresInARow++;
      if (previous && c.replaced.has(previous)) {
        c.replaced.delete(previous);
        c.current = previous;
      } else c.current = undefined;
      await next.stop();
      this.schedule(c, Math.min(1000 * 2 ** (c.failuresInARow - 1), 10_000));
      return;
    }
    c.failuresInARow = 0;
    this.deps.log.info({ event: 'composite-composing', composite: c.spec.name, ms: Math.round(performance.now() - startedAt) }, `composite ${c.spec.name}: the new compositor writes (${Math.round(performance.now() - startedAt)} ms after its start)`);
    // Every compositor it replaced goes (one that had itself been replaced, or a dead one).
    const old = [...c.replaced];
    c.replaced.clear();
    await Promise.all(old.map((o) => o.stop()));
  }

  /** The composite's stream, made now (its first participant): false when its name is taken. */
  private async adopt(c: Composite): Promise<boolean> {
    const h264 = TRANSCODED_H264;
    const aac = aacCodec(2);
    try {
      // AAC first: the outputs take a stream's first audio track; WHEP viewers the Opus.
      const { stream, ports } = await this.deps.registry.adopt(c.spec.name, [h264, aac, COMPOSITE_OPUS], () => c.mark(), { mediaTimeoutMs: COMPOSITE_MEDIA_TIMEOUT_MS });
      c.stream = stream;
      c.targets = { videoPort: ports[0], audioPort: ports[1], opusPort: ports[2], videoPayloadType: h264.payloadType, audioPayloadType: aac.payloadType, opusPayloadType: COMPOSITE_OPUS.payloadType };
      // The compositor is the stream's encoder: the API shows it on its video track, /metrics its CPU, and it stops after the outputs.
      stream.encoder('video', () => this.encoderOf(c));
      stream.once('closed', (end) => void this.streamClosed(c, stream, end));
      return true;
    } catch (e) {
      const busy = e instanceof PublishRefused && e.code === 'stream-busy';
      this.deps.log.warn({ event: 'composite-name-taken', composite: c.spec.name, error: (e as Error).message }, `composite ${c.spec.name} cannot start its stream: ${(e as Error).message}`);
      if (!busy || !c.removed) this.schedule(c, 2000); // tried again: the name may come free
      return false;
    }
  }

  private encoderOf(c: Composite): StreamEncoder {
    return {
      acquire: () => Promise.reject(new Error('a composite has no shared encoder to acquire')),
      release: () => undefined,
      stop: () => c.stopCompositors(),
      info: () => c.encoderInfo(),
      pids: () => c.pids(),
    };
  }

  /** Its stream ended: by an operator (DELETE /api/streams/<name>: the composite goes too), or otherwise it is made again while participants remain. */
  private async streamClosed(c: Composite, stream: Stream, end: StreamEnd): Promise<void> {
    if (c.stream !== stream) return;
    c.stream = undefined;
    await c.stopCompositors();
    if (end.cause === 'removed' && !c.removed) return void this.remove(c.spec.name);
    if (!c.removed && !this.closing && c.participants.length) this.schedule(c, 1000);
  }

  private watchLevels(c: Composite): void {
    if (c.timers.length) return; // watching already (the layout went back and forth)
    const timer = setInterval(() => {
      if (c.spec.layout !== 'speaker' || !c.current) return;
      void c.levels.read(c.current.levelFiles).then((levels) => {
        if (c.speaker.update(levels, performance.now(), c.participants.map((p) => p.name))) {
          this.deps.log.info({ event: 'composite-speaker', composite: c.spec.name, speaker: c.speaker.speaker }, `composite ${c.spec.name}: ${c.speaker.speaker} speaks`);
          this.schedule(c, 0);
        }
      });
    }, LEVELS_EVERY_MS);
    timer.unref();
    c.timers.push(timer);
  }

  private info(c: Composite): CompositeInfo {
    const { name, streams, layout, width, height, fps } = c.spec;
    const speaker = c.mark().speaker;
    return {
      name,
      streams,
      layout,
      width,
      height,
      fps,
      participants: c.participants.map((p) => p.name),
      ...(speaker ? { speaker } : {}),
      state: c.stream ? 'live' : 'waiting',
      ...(c.stream ? { compositor: c.encoderInfo() } : {}),
    };
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
