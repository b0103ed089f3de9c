import { EventEmitter } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import type { Logger } from '../log.js';
import type { FeedHandle } from '../media/feed-handle.js';
import { sdpMedia } from '../outputs/sdp-media.js';
import { buildArgs, loadSharedDefinition, resolveParams, type PipelineDefinition, type Values } from '../pipelines/definition.js';
import { FfmpegRunner } from '../pipelines/ffmpeg-runner.js';
import { udpPortsBound, type PortAllocator } from '../rtp/ports.js';
import { renderSessionSdp, type SdpMedia } from '../sdp/render.js';
import type { Stream } from '../streams/stream.js';
import type { TrackView } from '../streams/track-view.js';
import { filterGraph, type GraphParticipant } from './filter-graph.js';
import type { LayoutName, Size } from './layout.js';

// One run of a composite's compositor: ONE ffmpeg (pipelines/shared/composite.json) that
// reads every participant's video and audio as sent (H.264, VP8 or VP9 decoded directly;
// Opus or G.711), from one session SDP whose m-sections each have their own loopback port,
// fed by a feed opened on each participant's stream (in that stream's media worker, from
// its cached keyframe). It composes and mixes (filter-graph.ts), encodes once and sends
// H.264 and AAC back to the composite's own tracks (two RTP outputs through ffmpeg's tee
// muxer, so the runner keeps its one output).
//
// A run is for one set of participants, one layout and one speaker: when they change,
// composites.ts starts a new run next to this one and stops this one once the new one's
// pictures flow (the composite's tracks switch to the new SSRC at its first packet).

/** Where the composite's own tracks receive the compositor's RTP. */
export interface CompositeTargets {
  videoPort: number;
  audioPort: number;
  /** The mix again as Opus, for WHEP viewers (browsers take no AAC). */
  opusPort: number;
  videoPayloadType: number;
  audioPayloadType: number;
  opusPayloadType: number;
}

export interface CompositorSpec {
  name: string;
  /** The run's own folder (session SDP, audio levels): removed when it stops. */
  dir: string;
  participants: Stream[];
  layout: LayoutName;
  size: Size;
  fps: number;
  speaker?: number;
  targets: CompositeTargets;
  /** Encoder values: level, keyframeSeconds, videoKbps, preset. */
  encoder: Values;
}

export interface CompositorDeps {
  ports: PortAllocator;
  ffmpegPath: string;
  log: Logger;
}

export interface CompositorEvents {
  /** ffmpeg exited without being asked to. */
  died: [error: string];
}

const LOOPBACK = '127.0.0.1';
const LISTEN_WAIT_MS = 5000;
/** A stopped compositor's ffmpeg is killed after this long (its files need no finishing). */
const STOP_TIMEOUT_MS = 2000;

let definition: PipelineDefinition | undefined;

export class Compositor extends EventEmitter<CompositorEvents> {
  private runner: FfmpegRunner | undefined;
  private readonly feeds: FeedHandle[] = [];
  private readonly ports: number[] = [];
  private stopping = false;
  /** Audio level files by participant name (speaker.ts reads them). */
  readonly levelFiles = new Map<string, string>();

  constructor(
    readonly spec: CompositorSpec,
    private readonly deps: CompositorDeps,
  ) {
    super();
  }

  get pid(): number | undefined {
    return this.runner?.running ? this.runner.pid : undefined;
  }

  /** Seconds of composed media written so far (0 until its first pictures are out). */
  get outputSeconds(): number {
    return this.runner?.outputSeconds ?? 0;
  }

  async start(): Promise<void> {
    definition ??= loadSharedDefinition('composite');
    const s = this.spec;
    await mkdir(s.dir, { recursive: true });
    // Videos first, then audios: ffmpeg numbers them 0:v:i and 0:a:j in SDP order.
    const videos: { stream: Stream; track: TrackView; port: number }[] = [];
    const audios: typeof videos = [];
    const graph: GraphParticipant[] = [];
    for (const stream of s.participants) {
      const p: GraphParticipant = { name: stream.name };
      const video = stream.tracks.find((t) => t.kind === 'video');
      const audio = stream.tracks.find((t) => t.kind === 'audio');
      if (video) {
        p.video = videos.length;
        videos.push({ stream, track: video, port: await this.port() });
      }
      if (audio) {
        p.audio = audios.length;
        audios.push({ stream, track: audio, port: await this.port() });
        this.levelFiles.set(stream.name, `${s.dir}/level-${graph.length}.txt`);
      }
      graph.push(p);
    }
    if (this.stopping) return this.releasePorts();
    const media: SdpMedia[] = [...videos, ...audios].map((m) => sdpMedia(m.track, m.port));
    const sdpPath = `${s.dir}/session.sdp`;
    await writeFile(sdpPath, renderSessionSdp({ name: s.name, address: LOOPBACK, media }));
    for (const file of this.levelFiles.values()) await writeFile(file, '');
    const filter = filterGraph({ layout: s.layout, size: s.size, fps: s.fps, participants: graph, speaker: s.speaker, levelFile: (i) => `${s.dir}/level-${i}.txt` });
    const values: Values = { ...resolveParams(definition, { ...s.encoder, fps: s.fps, filterGraph: filter, ...s.targets }), dir: s.dir, stream: s.name, file: '' };
    const args = buildArgs(definition, values, { video: true, audio: true });
    const runner = new FfmpegRunner(this.deps.ffmpegPath, sdpPath, { ...args, inputOptions: ['-localaddr', LOOPBACK, ...args.inputOptions] });
    this.runner = runner;
    runner.on('start', (cmd) => this.deps.log.debug({ composite: s.name, cmd }, 'compositor started'));
    runner.on('exit', (exit) => {
      if (exit.requested || this.stopping) return;
      const error = [exit.error ?? 'ffmpeg exited', ...exit.lastLines.slice(-3)].join(' | ');
      this.deps.log.warn({ composite: s.name, error }, 'compositor exited');
      this.emit('died', error);
    });
    if (this.stopping) return this.releasePorts();
    runner.start();
    // Forwarding starts once ffmpeg has bound its input ports (no keyframe sent into a closed port).
    const deadline = Date.now() + LISTEN_WAIT_MS;
    const ports = [...videos, ...audios].map((m) => m.port);
    while (runner.running && !this.stopping && Date.now() < deadline && !(await udpPortsBound(ports))) await delay(20);
    if (!runner.running || this.stopping) return;
    // One feed per participant, its video and audio together (they start at the same moment).
    for (const stream of s.participants) {
      const targets = [...videos, ...audios].filter((m) => m.stream === stream).map((m) => ({ track: m.track, host: LOOPBACK, port: m.port }));
      if (!targets.length || stream.closed) continue;
      const feed = stream.openFeed(targets);
      this.feeds.push(feed);
      feed.open();
    }
  }

  private async port(): Promise<number> {
    const port = await this.deps.ports.allocate();
    this.ports.push(port);
    return port;
  }

  private releasePorts(): void {
    for (const p of this.ports.splice(0)) this.deps.ports.release(p);
  }

  /** Stops ffmpeg (its inputs kept flowing until it has gone), closes the feeds, frees the ports and the folder. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const f of this.feeds) f.drain();
    const exit = await this.runner?.stop(STOP_TIMEOUT_MS);
    if (exit && this.outputSeconds === 0) this.deps.log.warn({ composite: this.spec.name, lastLines: exit.lastLines.slice(-8) }, 'compositor stopped before it composed anything');
    for (const f of this.feeds.splice(0)) f.close();
    this.releasePorts();
    await rm(this.spec.dir, { recursive: true, force: true });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
