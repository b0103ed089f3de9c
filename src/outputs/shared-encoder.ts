import type { ChosenCodec } from '../webrtc/codec-policy.js';
import { loadSharedDefinition, resolveParams, type PipelineDefinition, type Values } from '../pipelines/definition.js';
import { ProcessCpu } from '../pipelines/process-cpu.js';
import type { Stream, StreamEncoder } from '../streams/stream.js';
import type { EncoderInfo, TrackView } from '../streams/track-view.js';
import { outputDir } from './kind.js';
import { runContext, type PipelineServices } from './pipeline-output.js';
import { PipelineRun } from './pipeline-run.js';

// An encode a stream's outputs share instead of each doing its own (shared-aac.ts: the
// audio to AAC; shared-h264.ts: VP8/VP9 video to H.264), a member of its stream (one per
// kind of track). One ffmpeg (a pipeline in pipelines/shared/, run by a PipelineRun as
// outputs are) reads one of the publisher's tracks and sends the result back as RTP
// to the stream's media worker, where it becomes one more track of the session (a "local
// track"); the outputs that need it are fed that track and copy it. The encoder starts
// with the first output that asks for it and stops after the last one has finished (so an
// output finishing its files still gets media), or when the stream closes. It is
// restarted with back-off like any pipeline; its port, and so the outputs' feeds, stay.
//
// A video encoder keeps the picture size it started with (ffmpeg scales every later
// picture to it), while browsers change size as their bandwidth estimate grows (Firefox
// starts at 320x240). So when the publisher's keyframes come with a new size, a new
// encoder is started next to the running one, from that keyframe (the worker's cached
// one). The worker takes the new encoder's packets from its first one on and drops the
// old one's (media/media-track.ts), so the picture goes on without a gap (stopping the old
// encoder first left 700 ms without pictures); the old one is stopped once the new one's
// parameter sets have arrived. The outputs' feeds carry on across the change of SSRC
// (rtp/forwarder.ts).

export interface SharedEncoderSpec {
  /** pipelines/shared/<name>.json */
  pipeline: string;
  kind: 'audio' | 'video';
  /** The codec of what the encoder sends back, for the local track. */
  codec: (source: TrackView) => ChosenCodec;
  /** The encoder's values besides `port`. */
  values: (source: TrackView) => Values;
  /** How much later than the source the encoded media arrives (measured; see each spec). */
  latencyMs: number;
  /** Start the encoder again when the source's picture size changes (video). */
  followPictureSize?: boolean;
}

/** How often a running encoder's CPU is read. */
const CPU_SAMPLE_MS = 2000;
/** A replaced encoder is stopped after this long even if its successor has sent nothing yet. */
const REPLACED_STOP_MS = 5000;

function sizeOf(source: TrackView): string | undefined {
  const { width, height } = source.parameterSets;
  return width && height ? `${width}x${height}` : undefined;
}

export class SharedEncoder implements StreamEncoder {
  private users = 0;
  private local: Promise<{ track: TrackView; port: number }> | undefined;
  private encoder: PipelineRun | undefined;
  private stopping: Promise<void> | undefined;
  private definition: PipelineDefinition | undefined;
  /** The picture size the running encoder started with (when it follows sizes). */
  private encodedSize: string | undefined;
  private unwatch: (() => void) | undefined;
  private resizes = 0;
  /** Restarts of encoders replaced since (a new picture size). */
  private earlierRestarts = 0;
  private readonly cpu = new ProcessCpu();
  private cpuTimer: NodeJS.Timeout | undefined;
  /** Encoders replaced for a new picture size, until they have stopped. */
  private readonly replaced = new Map<PipelineRun, { stopped: Promise<void>; stopNow: () => void }>();

  constructor(
    private readonly stream: Stream,
    private readonly services: PipelineServices & { dataDir: string },
    private readonly spec: SharedEncoderSpec,
  ) {}

  /** The encoded track, with its encoder running; give it back with release(). */
  async acquire(): Promise<TrackView> {
    this.users++;
    const source = this.stream.tracks.find((t) => t.kind === this.spec.kind);
    if (!source) throw new Error(`stream ${this.stream.name} has no ${this.spec.kind} to encode`);
    this.local ??= this.stream.localTrack(this.spec.codec(source), this.spec.latencyMs);
    const { track, port } = await this.local;
    await this.stopping; // one encoder at a time: one released by its last output finishes first
    if (!this.encoder && this.users > 0 && !this.stream.closed) this.startEncoder(source, track, port);
    return track;
  }

  /** The source's picture size changed: a new encoder for it (see the top of this file). */
  private async sizeChanged(source: TrackView, port: number): Promise<void> {
    const size = sizeOf(source);
    if (!this.encoder || !size || size === this.encodedSize) return;
    if (this.encodedSize === undefined) {
      this.encodedSize = size; // started before the first keyframe: this is its size
      return;
    }
    const { track } = await this.local!; // resolved already (the encoder runs)
    if (!this.encoder || sizeOf(source) === this.encodedSize) return; // replaced meanwhile
    this.stream.log.info({ event: 'transcoder.resize', from: this.encodedSize, to: size }, `picture size ${this.encodedSize} -> ${size}: a new encoder replaces the running one`);
    this.resizes++;
    const old = this.encoder;
    this.earlierRestarts += old.restarts;
    this.encoder = undefined;
    this.startEncoder(source, track, port);
    let stopNow = () => {};
    const stopped = this.whenReplaced(track, (now) => (stopNow = now)).then(() => old.stop());
    this.replaced.set(old, { stopped, stopNow });
    void stopped.finally(() => this.replaced.delete(old));
  }

  /**
   * Resolves when the new encoder's parameter sets reached the local track, after
   * REPLACED_STOP_MS at most, or at once when the function given to `now` is called.
   */
  private whenReplaced(local: TrackView, now: (resolveNow: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        unwatch();
        resolve();
      };
      const timer = setTimeout(done, REPLACED_STOP_MS);
      const unwatch = local.watchParameterSets(done);
      now(done);
    });
  }

  release(): void {
    this.users = Math.max(0, this.users - 1);
    if (this.users === 0) void this.stopEncoder();
  }

  private startEncoder(source: TrackView, local: TrackView, port: number): void {
    this.definition ??= loadSharedDefinition(this.spec.pipeline);
    const s = this.stream;
    // Each encoder its own folder (a replaced one finishes next to its successor).
    const id = `shared-${this.spec.pipeline}${this.resizes ? `-${this.resizes}` : ''}`;
    // It reads the publisher's track only, and its feed is the local track's input.
    const ctx = { ...runContext(s, this.services), tracks: [source], shared: undefined, openFeed: (targets: Parameters<Stream['openFeed']>[0]) => s.openFeed(targets, local) };
    // The spec's values, checked against the definition's params, with its defaults for what the spec leaves out.
    const given: Values = { ...this.spec.values(source), port };
    const params = Object.fromEntries(Object.entries(given).filter(([k]) => k in this.definition!.params));
    const values = { ...given, ...resolveParams(this.definition, params), file: '' };
    if (this.spec.followPictureSize) {
      this.encodedSize = sizeOf(source);
      this.unwatch ??= source.watchParameterSets(() => void this.sizeChanged(source, port));
    }
    const encoder = new PipelineRun(this.definition, outputDir(this.services.dataDir, s.name, id), values, ctx, { id, removeDirWhenDone: true, waitForParameterSets: false });
    this.encoder = encoder;
    encoder.on('restarting', (error) => s.log.debug({ event: id, state: 'restarting', error }, `${id} encoder restarting`));
    encoder.on('failed', (error) => s.log.warn({ event: id, state: 'failed', error }, `${id} encoder failed`));
    void this.encoder.start();
    this.cpuTimer ??= setInterval(() => this.cpu.sample(this.encoder?.pid), CPU_SAMPLE_MS);
    this.cpuTimer.unref();
  }

  pids(): number[] {
    return [this.encoder, ...this.replaced.keys()].map((e) => e?.pid).filter((p): p is number => p !== undefined);
  }

  /** The track's encoder as the API shows it. */
  info(): EncoderInfo {
    const e = this.encoder;
    const state = !e ? 'stopped' : e.pid !== undefined ? 'running' : 'starting';
    const cpuPercent = e ? this.cpu.percent : undefined;
    return { pipeline: this.spec.pipeline, state, ...(cpuPercent !== undefined ? { cpuPercent } : {}), restarts: this.earlierRestarts + (e?.restarts ?? 0), resizes: this.resizes };
  }

  private stopEncoder(): Promise<void> {
    const encoder = this.encoder;
    this.encoder = undefined;
    if (encoder) this.earlierRestarts += encoder.restarts;
    if (!encoder) return this.stopping ?? Promise.resolve();
    this.stopping = encoder.stop().finally(() => (this.stopping = undefined));
    return this.stopping;
  }

  /** The stream is closing (its outputs have stopped). */
  async stop(): Promise<void> {
    this.users = 0;
    this.unwatch?.();
    clearInterval(this.cpuTimer);
    const replaced = [...this.replaced.values()];
    for (const r of replaced) r.stopNow();
    await Promise.all([this.stopEncoder(), ...replaced.map((r) => r.stopped)]);
  }
}
