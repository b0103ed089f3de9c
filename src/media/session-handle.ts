import { EventEmitter } from 'node:events';
import type { Config } from '../config/schema.js';
import type { IceUpdate } from '../sdp/ice-fragment.js';
import type { IgnoredMedia } from '../sdp/offer.js';
import type { ChosenCodec } from '../webrtc/codec-policy.js';
import type { CandidateInit, SelectedPair } from '../webrtc/publisher-peer.js';
import { IceUpdateRefused } from '../webrtc/ice-update-refused.js';
import { FeedHandle } from './feed-handle.js';
import { ViewerHandle, type ViewerTimeouts } from './viewer-handle.js';
import type { Command, FeedTargetSpec, IceUpdateResult, LocalTrackResult, ParameterSetInfo, ReplyTo, Request, SessionStats } from './worker-messages.js';

// The main thread's side of one publisher's media session, which lives in a media worker
// (media/worker-session.ts). It keeps PublisherPeer's message-shaped surface (state and
// candidate events, requestKeyframe, addRemoteCandidate, close) and adds what the worker
// reports: parameter sets, stats, and 'lost' when the worker itself went away.

export interface SessionHandleEvents {
  state: [state: string];
  candidate: [candidate: CandidateInit | null];
  /** An ICE restart began (its answer and new candidates follow). */
  'ice-restarting': [];
  /** A new candidate pair after an ICE restart. */
  pair: [pair: SelectedPair];
  'parameter-sets': [track: number, sets: ParameterSetInfo];
  stats: [SessionStats];
  /** The worker stopped (crashed): the session is gone. */
  lost: [reason: string];
}

/** How a handle reaches its worker. */
export interface WorkerLink {
  readonly index: number;
  request<R extends Request>(r: R): Promise<ReplyTo<R>>;
  command(c: Command): void;
  /** A new feed id, unique in this worker. */
  nextFeedId(): number;
  forget(session: string): void;
}

export class SessionHandle extends EventEmitter<SessionHandleEvents> {
  /** Local candidates gathered so far (a late listener can catch up). */
  readonly localCandidates: CandidateInit[] = [];
  gatheringComplete = false;
  connectionState = 'new';
  keyframeRequests = 0;
  /** ICE sessions since the first (restarts); WHIP's ETag names the current one. */
  iceGeneration = 0;
  private pair: SelectedPair | undefined;
  private ended = false;
  readonly feeds = new Map<number, FeedHandle>();
  /** WHEP viewers of the session's stream (their peers run in the same worker). */
  readonly viewers = new Map<string, ViewerHandle>();

  /** The tracks' codecs, in the worker's track order (set once the offer is answered). */
  codecs: ChosenCodec[] = [];
  /** Sections the publisher offered to send that the answer left out, with why. */
  ignored: IgnoredMedia[] = [];

  constructor(
    readonly id: string,
    private readonly link: WorkerLink,
  ) {
    super();
  }

  /** The media worker the session runs on. */
  get worker(): number {
    return this.link.index;
  }

  /** A candidate from the publisher (trickle ICE); null or empty means end of candidates. */
  async addRemoteCandidate(c: CandidateInit | null): Promise<void> {
    if (!this.ended) await this.link.request({ op: 'candidate', session: this.id, candidate: c });
  }

  /**
   * Trickled candidates or an ICE restart after the answer (WHIP PATCH, WebSocket
   * re-offer); see PublisherPeer.updateIce. Throws IceUpdateRefused saying why not.
   */
  async updateIce(update: IceUpdate, options: { trickle: boolean; mids?: string[] }): Promise<IceUpdateResult> {
    if (this.ended) throw new IceUpdateRefused('session-ended', 'the session has ended');
    const result = await this.link.request({ op: 'ice-update', session: this.id, update, ...options });
    if (result.restarted) this.iceGeneration++;
    return result;
  }

  /** Asks the publisher for a keyframe (the worker merges requests that come close together). */
  requestKeyframe(): void {
    if (!this.ended) this.link.command({ op: 'keyframe', session: this.id });
  }

  /** The ICE candidate pair in use, once connected. */
  selectedPair(): SelectedPair | undefined {
    return this.pair;
  }

  /** A track fed from loopback (see WorkerSession.addLocalTrack): its index and port. */
  async addLocalTrack(codec: ChosenCodec, latencyMs: number): Promise<LocalTrackResult> {
    if (this.ended) throw new Error(`media session ${this.id} has ended`);
    return this.link.request({ op: 'local-track', session: this.id, codec, latencyMs });
  }

  /** Starts forwarding this session's tracks to `targets` (it sends once opened). */
  openFeed(targets: FeedTargetSpec[], encodes?: number): FeedHandle {
    const feed = new FeedHandle(this.link.nextFeedId(), targets.map((t) => t.port), (c) => {
      if (c.op === 'feed-close') this.feeds.delete(c.feed);
      if (!this.ended) this.link.command(c);
    });
    this.feeds.set(feed.id, feed);
    if (!this.ended) this.link.command({ op: 'feed', session: this.id, feed: feed.id, targets, ...(encodes !== undefined ? { encodes } : {}) });
    return feed;
  }

  /**
   * A WHEP viewer of this session's stream: answered in the session's own worker, next to
   * it (media/viewer-session.ts). Throws what the worker's answer threw (SdpError, ...).
   */
  async openViewer(req: { viewer: string; stream: string; offer: string; ice: Config['ice'] }, timeouts: ViewerTimeouts): Promise<{ viewer: ViewerHandle; answer: string }> {
    if (this.ended) throw new Error(`media session ${this.id} has ended`);
    const viewer = new ViewerHandle(req.viewer, this.id, this.link, timeouts);
    // Registered first: its state and stats may come before the answer.
    this.viewers.set(viewer.id, viewer);
    viewer.once('ended', () => this.viewers.delete(viewer.id));
    try {
      const result = await this.link.request({ op: 'viewer', session: this.id, ...req });
      viewer.tracks = result.tracks;
      return { viewer, answer: result.answer };
    } catch (e) {
      viewer.end('its offer was not answered');
      throw e;
    }
  }

  /**
   * Tells the publisher at once that the gateway ends the session (RTCP BYE, DTLS
   * close_notify), while the outputs still drain; close() follows.
   */
  announceClose(reason: string): void {
    if (!this.ended) this.link.command({ op: 'announce-close', session: this.id, reason });
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    // The worker ends the viewers with the session (each is told).
    for (const v of [...this.viewers.values()]) v.end('the stream ended');
    await this.link.request({ op: 'close', session: this.id }).catch(() => undefined);
    this.link.forget(this.id);
  }

  // --- from the worker ---

  onState(state: string, pair: SelectedPair | undefined): void {
    this.connectionState = state;
    if (pair) this.pair = pair;
    this.emit('state', state);
  }

  /** An ICE restart begins in the worker: the candidates that follow are the new session's. */
  onIceRestarting(): void {
    this.localCandidates.length = 0;
    this.gatheringComplete = false;
    this.emit('ice-restarting');
  }

  onCandidate(c: CandidateInit | null): void {
    if (c) this.localCandidates.push(c);
    else if (this.gatheringComplete) return;
    else this.gatheringComplete = true;
    this.emit('candidate', c);
  }

  onStats(stats: SessionStats): void {
    this.keyframeRequests = stats.keyframeRequests;
    const pair = stats.pair;
    if (pair && this.connectionState === 'connected' && JSON.stringify(pair) !== JSON.stringify(this.pair)) {
      this.pair = pair;
      if (this.iceGeneration > 0) this.emit('pair', pair);
    }
    for (const [id, bytes] of stats.feeds) {
      const feed = this.feeds.get(id);
      if (feed) feed.bytes = bytes;
    }
    this.emit('stats', stats);
  }

  /** The worker went away with the session. */
  onLost(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    for (const f of this.feeds.values()) f.sever();
    for (const v of [...this.viewers.values()]) v.end(reason);
    this.emit('lost', reason);
  }
}
