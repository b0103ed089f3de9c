import { EventEmitter } from 'node:events';
import { z } from 'zod';
import type { Logger } from '../log.js';
import type { FeedHandle } from '../media/feed-handle.js';
import type { FeedTargetSpec, IceUpdateResult } from '../media/worker-messages.js';
import type { SessionHandle } from '../media/session-handle.js';
import type { IceUpdate } from '../sdp/ice-fragment.js';
import { IceUpdateRefused } from '../webrtc/ice-update-refused.js';
import type { ChosenCodec } from '../webrtc/codec-policy.js';
import { ignoredMedia } from '../sdp/offer-shapes.js';
import type { CandidateInit } from '../webrtc/publisher-peer.js';
import { selectedPair } from '../webrtc/selected-pair.js';
import { outputInfo, type Output } from './output-contract.js';
import { streamEnd, type CloseCause, type StreamEnd } from './close-cause.js';
import { trackInfo, TrackView, type EncoderInfo } from './track-view.js';
import { viewerInfo, viewerInfoOf } from './viewer-info.js';

// A stream is a name with one publisher session and the outputs fed from it. The session's
// media runs in a media worker (`media`); the stream keeps its story: state, time-outs,
// outputs. close() cascades exactly once: outputs stop (ffmpeg finalises its files), then
// the session closes.

const streamState = z.enum(['connecting', 'live', 'closed']);
export type StreamState = z.infer<typeof streamState>;

/** What the publisher's browser reported it sends (its getStats(), from the built-in publish page), if it did. */
export const senderReport = z.strictObject({
  frameWidth: z.number().int().min(0).optional(),
  frameHeight: z.number().int().min(0).optional(),
  framesPerSecond: z.number().min(0).optional(),
  bitrateKbps: z.number().min(0).optional(),
  targetKbps: z.number().min(0).optional().describe("the encoder's target"),
  availableKbps: z.number().min(0).optional().describe("the browser's bandwidth estimate"),
  qualityLimitationReason: z.enum(['none', 'bandwidth', 'cpu', 'other']).optional().describe('why the encoder sends less than the camera gives'),
});
export type SenderReport = z.infer<typeof senderReport>;

/** What GET /api/streams shows of a composite (src/composites/): a stream the gateway composes from others. */
export const compositeMark = z
  .strictObject({
    layout: z.enum(['grid', 'speaker']),
    participants: z.array(z.string()).describe('the streams in it, in the order they joined'),
    speaker: z.string().optional().describe('speaker layout: the participant in the main area'),
  })
  .describe('set on a composite: one picture and one sound made from several streams (POST /api/composites)');
export type CompositeMark = z.infer<typeof compositeMark>;

/** What GET /api/streams shows of a stream; /api/openapi.json is generated from it. */
export const streamInfo = z.strictObject({
  name: z.string(),
  node: z.string().optional().describe('in a cluster: the node the stream is live on (host:port of its URL); the stats of another node\'s stream are as of its last heartbeat'),
  session: z.string(),
  state: streamState,
  startedAt: z.iso.datetime(),
  tracks: z.array(trackInfo),
  outputs: z.array(outputInfo),
  keyframeRequests: z.number().int().min(0).describe('keyframe requests (PLI) sent to the publisher'),
  worker: z.number().int().min(0).describe('the media worker thread the session runs on'),
  iceRestarts: z.number().int().min(0).describe('ICE restarts the session went through (WHIP PATCH or WebSocket restart): a publisher whose network changed goes on in the same session'),
  ignoredMedia: z
    .array(ignoredMedia.omit({ index: true }))
    .describe('sections the publisher offered to send that the gateway left out of the session (answered with port 0), and why: a section with no acceptable codec while another is usable, a second section of a kind already taken, port 0 without a=bundle-only'),
  ice: selectedPair.optional(),
  sender: senderReport
    .extend({ ageSeconds: z.number().int().min(0).describe('how long ago the browser reported it') })
    .optional()
    .describe("what the publisher's browser says it sends, reported within the last 10 s (the built-in publish page does)"),
  viewers: z.array(viewerInfo).describe('its WHEP viewers (real-time WebRTC playback)'),
  composite: compositeMark.optional(),
});
export type StreamInfo = z.infer<typeof streamInfo>;

export interface StreamEvents {
  live: [];
  /** close() began: the publisher is gone or going (its outputs are still finishing). */
  closing: [end: StreamEnd];
  closed: [end: StreamEnd];
  output: [Output];
}

export interface StreamTimeouts {
  connectTimeoutMs: number;
  disconnectTimeoutMs: number;
  mediaTimeoutMs: number;
}

/**
 * An encode the stream's outputs share (outputs/shared-encoder.ts: the AAC of its audio,
 * the H.264 of its VP8/VP9): made on first use, given back by each output, stopped when
 * the stream closes, after its outputs. One per kind of track.
 */
export interface StreamEncoder {
  /** The encoded track, with its encoder running; give it back with release(). */
  acquire(): Promise<TrackView>;
  release(): void;
  stop(): Promise<void>;
  /** What the API shows of it, on the stream's track of its kind. */
  info(): EncoderInfo;
  /** Its running ffmpeg processes. */
  pids(): number[];
}

export interface StreamDeps {
  timeouts: StreamTimeouts;
  log: Logger;
}

const SENDER_REPORT_FRESH_MS = 10_000;

export class Stream extends EventEmitter<StreamEvents> {
  state: StreamState = 'connecting';
  readonly startedAt = new Date();
  readonly tracks: TrackView[];
  readonly outputs = new Map<string, Output>();
  readonly log: Logger;
  private closing: Promise<void> | undefined;
  private timers: NodeJS.Timeout[] = [];
  private disconnectTimer: NodeJS.Timeout | undefined;
  private liveSince = 0;
  /** The last ICE restart: the media timeout counts from it (the new path needs a moment). */
  private restartedAt = 0;
  private iceQueue: Promise<unknown> = Promise.resolve();
  private sender: { report: SenderReport; at: number } | undefined;
  /** The shared encoders, one per kind of track (see StreamEncoder). */
  private readonly sharedEncoders: { [K in 'audio' | 'video']?: StreamEncoder } = {};
  /** Why it ended, once it has. */
  end: StreamEnd | undefined;
  /** A composite's description (set by the registry's adopt()); a publisher's stream has none. */
  composite: (() => CompositeMark) | undefined;
  /** Tracks the gateway feeds itself (see localTrack), by index in the session. */
  private readonly local = new Map<number, TrackView>();

  constructor(
    readonly name: string,
    readonly sessionId: string,
    readonly media: SessionHandle,
    private readonly deps: StreamDeps,
    /** The address the offer came from (HTTP or WebSocket client). */
    readonly from?: string,
  ) {
    super();
    this.log = deps.log.child({ stream: name, session: sessionId, worker: media.worker });
    this.tracks = media.codecs.map((c, i) => new TrackView(c, i));
    media.on('state', (s) => this.onPeerState(s));
    media.on('stats', (stats) => stats.tracks.forEach((t, i) => (this.tracks[i] ?? this.local.get(i))?.updateStats(t)));
    media.on('parameter-sets', (i, sets) => (this.tracks[i] ?? this.local.get(i))?.updateParameterSets(sets));
    media.on('lost', (reason) => void this.close('workerLost', reason));
    media.on('pair', (pair) => this.log.info({ event: 'ice-pair', ice: pair }, 'publisher connected again after an ICE restart'));
    // A state the worker reported while the answer was on its way, taken once the registry
    // (which builds this stream) has attached its listeners.
    if (media.connectionState !== 'new') process.nextTick(() => this.onPeerState(media.connectionState));
    const { connectTimeoutMs, mediaTimeoutMs } = deps.timeouts;
    this.timers.push(
      setTimeout(() => {
        if (this.state === 'connecting') void this.close('unconnected');
      }, connectTimeoutMs),
    );
    this.timers.push(
      setInterval(() => {
        if (this.state !== 'live') return;
        const last = Math.max(...this.tracks.map((t) => t.lastPacketAt), this.liveSince, this.restartedAt);
        if (performance.now() - last > mediaTimeoutMs) void this.close('lost', 'no media from the publisher');
      }, 1000),
    );
  }

  private onPeerState(state: string): void {
    this.log.info({ event: 'peer-state', state }, `publisher ${state}`);
    if (state === 'connected') {
      if (this.disconnectTimer) clearTimeout(this.disconnectTimer);
      this.disconnectTimer = undefined;
      if (this.state === 'connecting') {
        this.state = 'live';
        this.liveSince = performance.now();
        const pair = this.media.selectedPair();
        this.log.info({ event: 'live', ice: pair }, 'stream live');
        this.emit('live');
      }
    } else if (state === 'disconnected') {
      this.disconnectTimer ??= setTimeout(() => void this.close('lost', 'publisher disconnected'), this.deps.timeouts.disconnectTimeoutMs);
    } else if (state === 'failed' || state === 'closed') {
      void (state === 'failed' ? this.close('lost', 'ICE/DTLS failed') : this.close('left', 'the publisher closed the connection'));
    }
  }

  /** A candidate the publisher trickled (WebSocket signalling); null = end of candidates. */
  addRemoteCandidate(c: CandidateInit | null): Promise<void> {
    return this.media.addRemoteCandidate(c);
  }

  /** WHIP's entity tag for the session: it names the current ICE session, so it changes with each restart (RFC 9725 §4.3). */
  get etag(): string {
    return `"${this.sessionId}.${this.media.iceGeneration}"`;
  }

  /**
   * Candidates trickled after the answer, or an ICE restart (WHIP PATCH, a WebSocket
   * re-offer), one at a time. A restart keeps everything else: the session, its outputs,
   * its HLS playlist. Throws IceUpdateRefused (or SdpError) saying why not.
   */
  updateIce(update: IceUpdate, options: { trickle: boolean; mids?: string[] }): Promise<IceUpdateResult> {
    const run = this.iceQueue.then(async () => {
      if (this.closing) throw new IceUpdateRefused('session-ended', 'the session has ended');
      const result = await this.media.updateIce(update, options);
      if (result.restarted) {
        this.restartedAt = performance.now();
        this.log.info({ event: 'ice-restart', generation: this.media.iceGeneration }, 'publisher restarted ICE');
      }
      return result;
    });
    this.iceQueue = run.catch(() => undefined);
    return run;
  }

  /** Asks the publisher for a keyframe; requests from several outputs are merged. */
  requestKeyframe(): void {
    this.media.requestKeyframe();
  }

  /** Keyframe requests (PLI) sent to the publisher so far (as of the worker's last report). */
  get keyframeRequests(): number {
    return this.media.keyframeRequests;
  }

  /**
   * Starts forwarding tracks to an output's ports (it sends once opened). `encodes`: the
   * local track that output's ffmpeg makes (a shared encoder's input).
   */
  openFeed(targets: { track: TrackView; host: string; port: number }[], encodes?: TrackView): FeedHandle {
    const specs: FeedTargetSpec[] = targets.map((t) => ({ track: t.track.index, host: t.host, port: t.port }));
    return this.media.openFeed(specs, encodes?.index);
  }

  /**
   * A track fed from loopback by the gateway itself (a shared encode); its media worker
   * receives it on `port`. `latencyMs`: how much later than the publisher's media it comes.
   */
  async localTrack(codec: ChosenCodec, latencyMs: number): Promise<{ track: TrackView; port: number }> {
    const { track: index, port } = await this.media.addLocalTrack(codec, latencyMs);
    const track = new TrackView(codec, index);
    this.local.set(index, track);
    return { track, port };
  }

  /** The stream's shared encoder for tracks of `kind`, made by `make` the first time. */
  encoder(kind: 'audio' | 'video', make: () => StreamEncoder): StreamEncoder {
    if (this.closing) throw new Error(`stream ${this.name} is closing`);
    return (this.sharedEncoders[kind] ??= make());
  }

  /** Registers an output (src/outputs/ makes them) and starts it; it runs until stopped or the stream closes. */
  attachOutput<T extends Output>(output: T): T {
    if (this.closing) throw new Error(`stream ${this.name} is closing`);
    if (this.outputs.has(output.id)) throw new Error(`output ${output.id} already exists`);
    this.outputs.set(output.id, output);
    output.on('state', (state) => this.log.info({ event: 'output-state', output: output.id, type: output.type, state, error: output.error }, `output ${output.type} ${state}`));
    this.emit('output', output);
    void output.start();
    return output;
  }

  async removeOutput(id: string): Promise<boolean> {
    const output = this.outputs.get(id);
    if (!output) return false;
    await output.stop();
    this.outputs.delete(id);
    return true;
  }

  /** The publisher's browser reports what it sends (getStats()). */
  reportSender(report: SenderReport): void {
    this.sender = { report, at: performance.now() };
  }

  info(): StreamInfo {
    const sender = this.sender && performance.now() - this.sender.at < SENDER_REPORT_FRESH_MS ? this.sender : undefined;
    return {
      name: this.name,
      session: this.sessionId,
      state: this.state,
      startedAt: this.startedAt.toISOString(),
      tracks: this.tracks.map((t) => ({ ...t.info(), ...this.encoderOf(t.kind) })),
      outputs: [...this.outputs.values()].map((o) => o.info()),
      keyframeRequests: this.keyframeRequests,
      worker: this.media.worker,
      iceRestarts: this.media.iceGeneration,
      ignoredMedia: this.media.ignored.map(({ mid, kind, reason }) => ({ ...(mid !== undefined ? { mid } : {}), kind, reason })),
      ...(this.state === 'live' && this.media.selectedPair() ? { ice: this.media.selectedPair() } : {}),
      ...(sender ? { sender: { ...sender.report, ageSeconds: Math.round((performance.now() - sender.at) / 1000) } } : {}),
      viewers: [...this.media.viewers.values()].map(viewerInfoOf),
      ...(this.composite ? { composite: this.composite() } : {}),
    };
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** The stream's running ffmpeg processes: its outputs' and its shared encoders'. */
  ffmpegPids(): number[] {
    const outputs = [...this.outputs.values()].map((o) => o.pid).filter((p): p is number => p !== undefined);
    return [...outputs, ...Object.values(this.sharedEncoders).flatMap((e) => e.pids())];
  }

  /** The stream's shared encoders (shared-encoder.ts), with the kind of track each encodes. */
  encoders(): { kind: 'audio' | 'video'; encoder: EncoderInfo }[] {
    return (['audio', 'video'] as const).flatMap((kind) => {
      const e = this.sharedEncoders[kind];
      return e ? [{ kind, encoder: e.info() }] : [];
    });
  }

  /** The shared encoder working on the track of `kind`, if any. */
  private encoderOf(kind: 'audio' | 'video'): { encoder: EncoderInfo } | undefined {
    const e = this.sharedEncoders[kind];
    return e && { encoder: e.info() };
  }

  /**
   * Stops every output (files finalised), then the peer. Safe to call more than once: the
   * first cause is the one it ended with.
   */
  close(cause: CloseCause, detail?: string): Promise<void> {
    this.closing ??= (async () => {
      const end = (this.end = streamEnd(cause, detail));
      this.log.info({ event: 'closing', cause, reason: end.reason }, `stream closing: ${end.reason}`);
      this.emit('closing', end);
      // The publisher hears of it now, not after the outputs have finished their files
      // (they keep reading until then; see Feed.drain).
      this.media.announceClose(end.reason);
      for (const t of this.timers) clearTimeout(t);
      if (this.disconnectTimer) clearTimeout(this.disconnectTimer);
      await Promise.all([...this.outputs.values()].map((o) => o.stop()));
      await Promise.all(Object.values(this.sharedEncoders).map((e) => e.stop()));
      await this.media.close();
      for (const t of [...this.tracks, ...this.local.values()]) t.close();
      this.state = 'closed';
      this.log.info({ event: 'closed', cause, reason: end.reason }, 'stream closed');
      this.emit('closed', end);
    })();
    return this.closing;
  }
}
