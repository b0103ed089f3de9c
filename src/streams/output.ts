import { EventEmitter } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import { startsKeyframe } from '../rtp/h264.js';
import { RtpForwarder } from '../rtp/forwarder.js';
import { udpPortsBound, type PortAllocator } from '../rtp/ports.js';
import { renderSessionSdp, type SdpMedia } from '../sdp/render.js';
import { buildArgs, type BuiltArgs, type PipelineDefinition, type Values } from '../pipelines/definition.js';
import { FfmpegProcess, type FfmpegExit } from '../pipelines/ffmpeg-process.js';
import type { Track } from './track.js';

// One output = one pipeline definition + one ffmpeg process, fed by its own RTP forwarders
// on its own loopback ports. Starting, stopping or crashing one output touches nothing
// else. Start sequence: wait for SPS/PPS (asking for a keyframe), render the session SDP
// into the output folder, spawn ffmpeg, wait until it listens, then forward video from the
// next keyframe (PLI until it comes) and audio from that moment on, so both start together.

export type OutputState = 'starting' | 'running' | 'restarting' | 'stopped' | 'failed';

export interface OutputInfo {
  id: string;
  type: string;
  state: OutputState;
  startedAt?: string;
  restarts: number;
  error?: string;
}

export interface OutputContext {
  streamName: string;
  tracks: Track[];
  ports: PortAllocator;
  ffmpegPath: string;
  stopTimeoutMs: number;
  requestKeyframe: () => void;
  log: Logger;
}

export interface OutputEvents {
  state: [OutputState];
}

interface Attached {
  track: Track;
  forwarder: RtpForwarder;
  unsubscribe: () => void;
  port: number;
}

const MAX_RESTARTS = 5;
const STABLE_RUN_MS = 30_000;
const PARAMETER_SET_WAIT_MS = 5000;
const LISTEN_WAIT_MS = 5000;
const PLI_UNTIL_KEYFRAME_MS = 300;

export class PipelineOutput extends EventEmitter<OutputEvents> {
  readonly id: string;
  state: OutputState = 'starting';
  restarts = 0;
  error?: string;
  startedAt?: Date;
  private process: FfmpegProcess | undefined;
  private forwarders: Attached[] = [];
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private failuresInARow = 0;
  private spawnedAt = 0;

  constructor(
    readonly definition: PipelineDefinition,
    /** Folder for the session SDP and (for file outputs) the media. */
    readonly dir: string,
    private readonly values: Values,
    private readonly ctx: OutputContext,
    id?: string,
  ) {
    super();
    this.id = id ?? randomBytes(4).toString('hex');
  }

  get type(): string {
    return this.definition.type;
  }

  info(): OutputInfo {
    return {
      id: this.id,
      type: this.type,
      state: this.state,
      ...(this.startedAt ? { startedAt: this.startedAt.toISOString() } : {}),
      restarts: this.restarts,
      ...(this.error ? { error: this.error } : {}),
    };
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

  private setState(state: OutputState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  private async launch(): Promise<void> {
    const video = this.ctx.tracks.find((t) => t.kind === 'video');
    const audio = this.ctx.tracks.find((t) => t.kind === 'audio');
    if (video) {
      const pli = setInterval(() => this.ctx.requestKeyframe(), PLI_UNTIL_KEYFRAME_MS);
      const ready = await video.parameterSetsReady(PARAMETER_SET_WAIT_MS);
      clearInterval(pli);
      if (!ready && !this.stopping) this.ctx.log.warn({ output: this.id }, 'no SPS/PPS from the publisher yet; starting without sprop-parameter-sets');
    }
    if (this.stopping) return;
    const media: SdpMedia[] = [];
    for (const track of [video, audio].filter((t): t is Track => t !== undefined)) {
      const port = await this.ctx.ports.allocate();
      if (this.stopping) {
        this.ctx.ports.release(port);
        return this.releaseForwarders();
      }
      this.forwarders.push(this.attach(track, port));
      media.push(sdpMedia(track, port));
    }
    const sdpPath = `${this.dir}/session.sdp`;
    await mkdir(this.dir, { recursive: true });
    await writeFile(sdpPath, renderSessionSdp({ name: this.ctx.streamName, address: '127.0.0.1', media }));
    const args = buildArgs(this.definition, { ...this.values, dir: this.dir, stream: this.ctx.streamName }, { video: !!video, audio: !!audio });
    this.spawn(sdpPath, args);
  }

  /** A forwarder from a track to one ffmpeg input port; video waits for a keyframe. */
  private attach(track: Track, port: number): Attached {
    const forwarder = new RtpForwarder({
      port,
      payloadType: track.codec.payloadType,
      clockRate: track.codec.clockRate,
      isKeyframeStart: track.kind === 'video' ? startsKeyframe : undefined,
    });
    const unsubscribe = track.subscribe((p) => {
      const wasStarted = forwarder.started;
      forwarder.send(p);
      if (!wasStarted && forwarder.started && track.kind === 'video') this.onVideoFlowing(undefined);
    });
    return { track, forwarder, unsubscribe, port };
  }

  private spawn(sdpPath: string, args: BuiltArgs): void {
    if (this.stopping) return;
    const proc = new FfmpegProcess(this.ctx.ffmpegPath, sdpPath, args);
    this.spawnedAt = performance.now();
    this.process = proc;
    proc.on('start', (cmd) => this.ctx.log.debug({ output: this.id, cmd }, 'ffmpeg started'));
    proc.on('exit', (exit) => this.onExit(exit));
    proc.start();
    void this.openWhenListening(proc, args.keyframeIntervalSeconds);
  }

  /** Forwarding starts once ffmpeg has bound its input ports, so no keyframe is sent into a closed port. */
  private async openWhenListening(proc: FfmpegProcess, keyframeIntervalSeconds: number | undefined): Promise<void> {
    const ports = this.forwarders.map((f) => f.port);
    const deadline = Date.now() + LISTEN_WAIT_MS;
    while (proc.running && !this.stopping && Date.now() < deadline && !(await udpPortsBound(ports))) {
      await delay(20);
    }
    if (!proc.running || this.stopping) return;
    const video = this.forwarders.find((f) => f.track.kind === 'video');
    if (video) {
      // Start from the cached keyframe when there is one: no wait for the publisher.
      const since = video.track.cachedKeyframeAt;
      video.forwarder.open();
      for (const p of video.track.cached()) video.forwarder.send(p);
      if (video.forwarder.started) {
        this.onVideoFlowing(since);
      } else {
        this.ctx.requestKeyframe();
        // Keep asking until the first keyframe went out (a PLI can be lost or rate-limited).
        const pli = setInterval(() => {
          if (video.forwarder.started || this.stopping) return clearInterval(pli);
          this.ctx.requestKeyframe();
        }, PLI_UNTIL_KEYFRAME_MS);
        this.timers.push(pli);
      }
      if (keyframeIntervalSeconds) {
        // Segments are cut at keyframes: ask for one at the segment cadence.
        this.timers.push(setInterval(() => this.ctx.requestKeyframe(), keyframeIntervalSeconds * 1000));
      }
    } else {
      this.onVideoFlowing(performance.now());
    }
  }

  /**
   * Video reached ffmpeg (or there is none): audio joins, from the moment the first
   * forwarded keyframe arrived (`since`) so both start together, and the output runs.
   */
  private onVideoFlowing(since: number | undefined): void {
    for (const f of this.forwarders) {
      if (f.track.kind !== 'audio') continue;
      f.forwarder.open();
      if (since !== undefined) for (const p of f.track.cached(since)) f.forwarder.send(p);
    }
    this.startedAt ??= new Date();
    this.setState('running');
  }

  private onExit(exit: FfmpegExit): void {
    this.clearTimers();
    if (this.stopping || exit.requested) return;
    // A crash after a long healthy run starts the count again; a crash loop does not.
    if (performance.now() - this.spawnedAt > STABLE_RUN_MS) this.failuresInARow = 0;
    this.failuresInARow++;
    this.error = exit.error ?? `ffmpeg exited unexpectedly: ${exit.lastLines.slice(-3).join(' | ')}`;
    this.ctx.log.warn({ output: this.id, type: this.type, error: this.error, lastLines: exit.lastLines.slice(-5) }, 'ffmpeg exited');
    if (this.failuresInARow > MAX_RESTARTS) return this.fail(this.error);
    this.restarts++;
    this.setState('restarting');
    // Restart with back-off, on fresh ports (the old ones may be what failed: a port
    // taken by another program between our check and ffmpeg's bind), from a keyframe.
    this.releaseForwarders();
    const backoff = Math.min(500 * 2 ** (this.failuresInARow - 1), 10_000);
    this.timers.push(setTimeout(() => void this.start(), backoff));
  }

  private fail(message: string): void {
    this.error = message;
    this.ctx.log.error({ output: this.id, type: this.type, error: message }, 'output failed');
    this.clearTimers();
    this.releaseForwarders();
    this.setState('failed');
  }

  /** Stops cleanly: forwarding ends, ffmpeg finishes its files ('q'), ports are released. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.clearTimers();
    // Packets keep flowing until ffmpeg has exited, so it finishes the last segment.
    const proc = this.process;
    if (proc?.running) await proc.stop(this.ctx.stopTimeoutMs);
    this.releaseForwarders();
    if (this.state !== 'failed') this.setState('stopped');
  }

  private releaseForwarders(): void {
    for (const f of this.forwarders) {
      f.unsubscribe();
      f.forwarder.close();
      this.ctx.ports.release(f.port);
    }
    this.forwarders = [];
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /** For tests and diagnostics: packets forwarded per kind. */
  forwarded(): { kind: string; packets: number; bytes: number }[] {
    return this.forwarders.map((f) => ({ kind: f.track.kind, packets: f.forwarder.packets, bytes: f.forwarder.bytes }));
  }
}

function sdpMedia(track: Track, port: number): SdpMedia {
  const c = track.codec;
  if (c.name === 'H264') {
    const ps = track.parameterSets;
    return {
      codec: 'h264',
      port,
      payloadType: c.payloadType,
      clockRate: c.clockRate,
      fmtp: {
        'packetization-mode': 1,
        'profile-level-id': ps.profileLevelId ?? c.fmtp['profile-level-id'] ?? '42e01f',
        ...(ps.spropParameterSets ? { 'sprop-parameter-sets': ps.spropParameterSets } : {}),
      },
    };
  }
  if (c.name === 'opus') {
    return {
      codec: 'opus',
      port,
      payloadType: c.payloadType,
      clockRate: 48000,
      channels: 2,
      fmtp: { 'sprop-stereo': c.channels === 2 ? 1 : 0 },
    };
  }
  return { codec: c.name.toLowerCase(), port, payloadType: c.payloadType, clockRate: c.clockRate, channels: 1 };
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
