import { EventEmitter } from 'node:events';
import { open, mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Logger } from '../log.js';
import type { FeedHandle } from '../media/feed-handle.js';
import { buildArgs, type BuiltArgs, type PipelineDefinition, type Values } from '../pipelines/definition.js';
import { FfmpegRunner, type FfmpegExit } from '../pipelines/ffmpeg-runner.js';
import { udpPortsBound, type PortAllocator } from '../rtp/ports.js';
import { renderSessionSdp } from '../sdp/render.js';
import type { Stream, StreamEncoder } from '../streams/stream.js';
import type { TrackView } from '../streams/track-view.js';
import { isTranscoded } from '../webrtc/codec-policy.js';
import { sdpMedia } from './sdp-media.js';

// One pipeline definition run by one ffmpeg at a time, fed by its own RTP forwarders (in
// the publisher's media worker) on its own loopback ports, and started again with
// back-off when ffmpeg dies. What an API output is (PipelineOutput) and what a stream's
// shared encoder is (SharedEncoder) are built on it; neither is the other.
//
// Start sequence: wait for SPS/PPS (asking for a keyframe), render the session SDP into
// the run's folder, spawn ffmpeg, wait until it listens, then forward video from the next
// keyframe and audio from that moment on, so both start together.

/** The stream's shared encodes of a kind (AAC for outputs whose audio input is `aac`, H.264 from VP8/VP9), as a run uses them. */
export type SharedTracks = { [K in 'audio' | 'video']?: () => Pick<StreamEncoder, 'acquire' | 'release'> };

export interface RunContext {
  streamName: string;
  tracks: TrackView[];
  shared?: SharedTracks;
  ports: PortAllocator;
  ffmpegPath: string;
  stopTimeoutMs: number;
  requestKeyframe: () => void;
  openFeed: Stream['openFeed'];
  log: Logger;
}

export interface PipelineRunOptions {
  /** For logs: the output's or encoder's id. */
  id: string;
  /** For stdout pipelines: where ffmpeg's output goes (kept open across restarts). */
  stdout?: Writable;
  /**
   * Wait (up to 5 s, asking for a keyframe) for SPS/PPS before starting ffmpeg, so the
   * session SDP carries sprop-parameter-sets. Off for a run started while the publisher is
   * still connecting: ffmpeg then starts at once and is listening when the first keyframe
   * arrives, which brings its SPS/PPS in-band (browsers send them before every IDR, and
   * the feed starts at one).
   */
  waitForParameterSets?: boolean;
  /**
   * Values for each start of ffmpeg (`restart` after it died), merged over the run's
   * values: a recording writes each run into its own part file.
   */
  launchValues?: (restart: boolean) => Values | Promise<Values>;
  /** The folder is the run's own (its session SDP): removed when the run ends. */
  removeDirWhenDone?: boolean;
  /** Overrides the definition's audioInput (the kind knows: HLS audio copy, a recording's container). */
  audioInput?: PipelineDefinition['audioInput'];
  /** `source`: the publisher's VP8/VP9 as sent instead of the stream's H.264 from it (a recording that keeps the original). */
  videoInput?: 'source' | 'h264';
  /**
   * The first ffmpeg starts this far back: at a keyframe of the media worker's history,
   * the seconds since sent at once (/live for ffmpeg's own tools). Not on a restart: what
   * was sent once is not sent again.
   */
  backlogSeconds?: number;
}

export interface PipelineRunEvents {
  /** Media reaches ffmpeg. */
  flowing: [];
  /** ffmpeg died and is started again after a back-off. */
  restarting: [error: string];
  /** It will not run again: `error` says why. */
  failed: [error: string];
  /** A one-shot pipeline's ffmpeg finished by itself. */
  finished: [];
}

/** Where every ffmpeg input listens and every forwarder sends: nobody else can inject RTP. */
const LOOPBACK = '127.0.0.1';
/**
 * ffmpeg's sdp demuxer binds its RTP/RTCP sockets to the wildcard address unless told
 * otherwise, whatever the SDP's c= line says: anyone on the network could send into an
 * output. Every pipeline's input gets these options, so no pipeline can forget them.
 */
const INPUT_ON_LOOPBACK = ['-localaddr', LOOPBACK];
const MAX_RESTARTS = 5;
/**
 * ffmpeg errors that another try cannot fix: the run fails at once with this reason
 * (restarting on a full disk only made a new part every 30 s and never said why).
 */
const FATAL: { pattern: RegExp; reason: string }[] = [{ pattern: /No space left on device/i, reason: 'disk full' }];
const STABLE_RUN_MS = 30_000;
const SILENT_STOP_TIMEOUT_MS = 1000;
const PARAMETER_SET_WAIT_MS = 5000;
const LISTEN_WAIT_MS = 5000;

/** A pipeline that must never overwrite found its target there already. */
export class TargetExists extends Error {}

interface FeedTarget {
  track: TrackView;
  host: string;
  port: number;
}

export class PipelineRun extends EventEmitter<PipelineRunEvents> {
  private process: FfmpegRunner | undefined;
  private feed: FeedHandle | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private failuresInARow = 0;
  private spawnedAt = 0;
  private bytesBefore = 0;
  /** ffmpeg processes started so far (the next one is a restart when > 0). */
  private launches = 0;
  /** Restarts after ffmpeg died. */
  restarts = 0;
  /** Why the last ffmpeg died, or why the run failed. */
  error: string | undefined;
  /** Shared tracks in use, held from the first start to the end (released once). */
  private readonly leases = new Map<'audio' | 'video', { shared: Pick<StreamEncoder, 'acquire' | 'release'>; track: Promise<TrackView> }>();

  constructor(
    readonly definition: PipelineDefinition,
    /** Folder for the session SDP and (for file outputs) the media. */
    readonly dir: string,
    private readonly values: Values,
    private readonly ctx: RunContext,
    private readonly options: PipelineRunOptions,
  ) {
    super();
  }

  get bytesOut(): number {
    return this.bytesBefore + (this.process?.bytesOut ?? 0);
  }

  get pid(): number | undefined {
    return this.process?.running ? this.process.pid : undefined;
  }

  async start(): Promise<void> {
    try {
      await this.launch();
    } catch (e) {
      this.fail((e as Error).message);
    }
  }

  /**
   * What this run's ffmpeg reads of `kind`: the publisher's track, or the stream's shared
   * encode of it: AAC when the audio input is `aac`, H.264 when the publisher sends
   * VP8/VP9 (outputs copy H.264, unless told to take the VP8/VP9 as sent).
   */
  private async track(kind: 'audio' | 'video'): Promise<TrackView | undefined> {
    const source = this.ctx.tracks.find((t) => t.kind === kind);
    // Audio that is AAC already (a composite's) is copied as it is.
    const wanted = kind === 'audio' ? (this.options.audioInput ?? this.definition.audioInput) === 'aac' && source?.codec.name !== 'AAC' : source !== undefined && isTranscoded(source.codec) && this.options.videoInput !== 'source';
    const shared = this.ctx.shared?.[kind];
    if (!source || !wanted || !shared) return source;
    let lease = this.leases.get(kind);
    if (!lease) {
      const s = shared();
      lease = { shared: s, track: s.acquire() };
      this.leases.set(kind, lease);
    }
    return lease.track;
  }

  private releaseShared(): void {
    for (const lease of this.leases.values()) lease.shared.release();
    this.leases.clear();
  }

  private async launch(): Promise<void> {

    const video = await this.track('video');
    const audio = await this.track('audio');
    if (video && (this.options.waitForParameterSets ?? true)) {
      // SPS/PPS come with a keyframe: asked for only if they are not cached already (the
      // session's keyframe policy repeats the request until one comes).
      if (video.codec.name === 'H264' && !video.parameterSets.sprop) this.ctx.requestKeyframe();
      const ready = await video.parameterSetsReady(PARAMETER_SET_WAIT_MS);
      if (!ready && !this.stopping) this.ctx.log.warn({ output: this.options.id }, 'no SPS/PPS from the publisher yet; starting without sprop-parameter-sets');
    }
    const targets: FeedTarget[] = [];
    try {
      for (const track of [video, audio].filter((t): t is TrackView => t !== undefined)) {
        if (this.stopping) break;
        targets.push({ track, host: LOOPBACK, port: await this.ctx.ports.allocate() });
      }
    } catch (e) {
      for (const t of targets) this.ctx.ports.release(t.port);
      throw e;
    }
    if (this.stopping) {
      for (const t of targets) this.ctx.ports.release(t.port);
      return;
    }
    this.feed = this.ctx.openFeed(targets);
    this.feed.on('flowing', () => this.emit('flowing'));
    const sdpPath = `${this.dir}/session.sdp`;
    await mkdir(this.dir, { recursive: true });
    await writeFile(sdpPath, renderSessionSdp({ name: this.ctx.streamName, address: LOOPBACK, media: targets.map((t) => sdpMedia(t.track, t.port)) }));
    const restart = this.launches++ > 0;
    const launch = (await this.options.launchValues?.(restart)) ?? {};
    const args = buildArgs(this.definition, { ...this.values, ...launch, dir: this.dir, stream: this.ctx.streamName }, { video: !!video, audio: !!audio, restart });
    if (!args.overwrite) await createExclusively(args.target, this.definition.type);
    this.spawn(sdpPath, args);
  }

  private spawn(sdpPath: string, args: BuiltArgs): void {
    if (this.stopping) return;
    if (this.process) this.bytesBefore += this.process.bytesOut;
    const proc = new FfmpegRunner(this.ctx.ffmpegPath, sdpPath, { ...args, inputOptions: [...INPUT_ON_LOOPBACK, ...args.inputOptions] }, this.options.stdout);
    this.spawnedAt = performance.now();
    this.process = proc;
    proc.on('start', (cmd) => this.ctx.log.debug({ output: this.options.id, cmd }, 'ffmpeg started'));
    proc.on('exit', (exit) => this.onExit(exit));
    proc.start();
    void this.openWhenListening(proc, args.keyframeIntervalSeconds);
  }

  /** Forwarding starts once ffmpeg has bound its input ports, so no keyframe is sent into a closed port. */
  private async openWhenListening(proc: FfmpegRunner, keyframeIntervalSeconds: number | undefined): Promise<void> {
    const feed = this.feed;
    if (!feed) return;
    const deadline = Date.now() + LISTEN_WAIT_MS;
    while (proc.running && !this.stopping && Date.now() < deadline && !(await udpPortsBound(feed.ports))) {
      await delay(20);
    }
    if (!proc.running || this.stopping || this.feed !== feed) return;
    feed.open(keyframeIntervalSeconds, this.launches === 1 ? this.options.backlogSeconds : undefined);
  }

  private onExit(exit: FfmpegExit): void {
    this.clearTimers();
    if (this.stopping || exit.requested) return;
    if (this.definition.mode === 'oneshot') {
      // A one-shot pipeline (snapshot) is done when ffmpeg exits by itself.
      this.releaseFeed();
      return exit.error ? this.fail(describeExit(exit)) : void this.emit('finished');
    }
    const fatal = FATAL.find((f) => exit.lastLines.some((l) => f.pattern.test(l)));
    if (fatal) {
      this.releaseFeed();
      return this.fail(`${fatal.reason}: ${describeExit(exit)}`);
    }
    // A crash after a long healthy run starts the count again; a crash loop does not.
    if (performance.now() - this.spawnedAt > STABLE_RUN_MS) this.failuresInARow = 0;
    this.failuresInARow++;
    this.error = describeExit(exit);
    this.ctx.log.warn({ output: this.options.id, type: this.definition.type, error: this.error, lastLines: exit.lastLines.slice(-5) }, 'ffmpeg exited');
    if (this.failuresInARow > MAX_RESTARTS) return this.fail(this.error);
    this.restarts++;
    this.emit('restarting', this.error);
    // Restart with back-off, on fresh ports (the old ones may be what failed: a port
    // taken by another program between our check and ffmpeg's bind), from a keyframe.
    this.releaseFeed();
    const backoff = Math.min(500 * 2 ** (this.failuresInARow - 1), 10_000);
    this.timers.push(setTimeout(() => void this.start(), backoff));
  }

  private fail(message: string): void {
    this.error = message;
    this.ctx.log.error({ output: this.options.id, type: this.definition.type, error: message }, 'pipeline failed');
    this.clearTimers();
    this.releaseFeed();
    this.releaseShared();
    this.emit('failed', message);
    void this.removeDir();
  }

  /**
   * A run's own folder goes when it ends (and the stream's, once empty); stop() waits for
   * it, so a pipeline started again with the same folder (a shared encoder following a new
   * picture size) does not lose its new session SDP to the old one's clean-up.
   */
  private async removeDir(): Promise<void> {
    if (!this.options.removeDirWhenDone) return;
    await rm(this.dir, { recursive: true, force: true });
    await rmdir(path.dirname(this.dir)).catch(() => undefined);
  }

  /** Whether stop() has been called. */
  get stopped(): boolean {
    return this.stopping;
  }

  /**
   * Stops cleanly: forwarding ends, ffmpeg finishes its files (SIGINT), ports are released,
   * the shared encodes it used are given back, its own folder is removed.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.clearTimers();
    // Packets keep flowing until ffmpeg has exited, so it finishes the last segment. ffmpeg
    // acts on SIGINT only between two input packets: when the publisher has stopped
    // sending, the feed nudges it with one harmless packet at a time (Feed.drain), and it
    // finishes its files (MP4 index, MKV duration, #EXT-X-ENDLIST). Without any packet
    // (no feed yet, or its worker is gone) it gets a short grace instead of the full timeout.
    const proc = this.process;
    const silent = !this.feed || this.feed.silent;
    this.feed?.drain();
    if (proc?.running) await proc.stop(silent ? SILENT_STOP_TIMEOUT_MS : this.ctx.stopTimeoutMs);
    this.releaseFeed();
    this.releaseShared();
    await this.removeDir();
  }

  private releaseFeed(): void {
    if (!this.feed) return;
    this.feed.close();
    for (const port of this.feed.ports) this.ctx.ports.release(port);
    this.feed = undefined;
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }
}

/**
 * Creates a pipeline's target file, failing if it exists (O_EXCL: no other writer can
 * slip in between a check and the create). ffmpeg then writes into the empty file.
 */
export async function createExclusively(target: string, type: string): Promise<void> {
  try {
    await (await open(target, 'wx')).close();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new TargetExists(`${target} exists and ${type} never overwrites`);
    throw e;
  }
}

/** ffmpeg's exit status with its last error lines, for the API and the logs. */
function describeExit(exit: FfmpegExit): string {
  const lines = exit.lastLines.map((l) => l.replace(/^\[(error|warning|fatal)\]\s*/, '').trim()).filter(Boolean);
  const status = (exit.error ?? 'ffmpeg exited unexpectedly').replace(/:\s*$/, '');
  return [status, ...lines.slice(-3)].join(' | ');
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
