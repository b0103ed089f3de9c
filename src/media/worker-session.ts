import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { parseRtp } from '../rtp/packet.js';
import { isTranscoded, type ChosenCodec } from '../webrtc/codec-policy.js';
import type { IceUpdate } from '../sdp/ice-fragment.js';
import { parseOffer } from '../sdp/offer.js';
import { PublisherPeer, type CandidateInit } from '../webrtc/publisher-peer.js';
import { Feed } from './feed.js';
import { KeyframePolicy } from './keyframe-policy.js';
import type { AnswerResult, FeedTargetSpec, FromWorker, IceUpdateResult, LocalTrackResult, Request, SessionStats } from './worker-messages.js';
import { MediaTrack } from './media-track.js';

// One publisher in its media worker: the werift peer, its tracks and the feeds of its
// outputs. Packets go peer -> track -> feeds -> ffmpeg without leaving the thread; what
// the main thread hears of it are events (state, candidates, parameter sets, a feed
// flowing) and the stats the worker sends every second.

/** A transcoder with no picture out for this long gets the publisher asked for a keyframe. */
const TRANSCODER_SILENT_MS = 1000;
/** Video counts as arriving while its last packet is at most this old (the keyframe policy judges only then). */
const VIDEO_FLOWING_MS = 500;

export class WorkerSession {
  readonly tracks: MediaTrack[];
  private readonly feeds = new Map<number, Feed>();
  /** Keyframe watchdogs of transcoder inputs, by feed (see watchTranscoder). */
  private readonly watchdogs = new Map<number, NodeJS.Timeout>();
  /** Sockets of the local tracks (see addLocalTrack). */
  private readonly sockets: dgram.Socket[] = [];
  /** Every keyframe request of the session goes through it (see keyframe-policy.ts). */
  private readonly keyframes: KeyframePolicy;

  private constructor(
    readonly id: string,
    /** The publisher's peer; none for a session of local tracks only (a composite). */
    private readonly peer: PublisherPeer | undefined,
    private readonly send: (m: FromWorker) => void,
    private readonly historyMs: number,
  ) {
    this.tracks = (peer?.tracks ?? []).map((c, i) => new MediaTrack(c, (sets) => send({ op: 'parameter-sets', session: id, track: i, sets }), 0, false, historyMs));
    const video = this.tracks.find((t) => t.kind === 'video');
    this.keyframes = new KeyframePolicy(() => peer?.requestKeyframe(), undefined, () => video !== undefined && performance.now() - video.lastPacketAt < VIDEO_FLOWING_MS);
    if (video) video.onKeyframe = () => this.keyframes.keyframe();
    if (!peer) return;
    // A new source (an encoder restarted under another SSRC): what was learned of the old
    // one does not hold, and a keyframe is needed now.
    peer.on('source', () => {
      this.keyframes.reset();
      this.keyframes.request();
    });
    peer.on('rtp', (codec, packet) => this.tracks.find((t) => t.codec === codec)?.receive(packet));
    peer.on('nack', (codec, packets) => {
      const track = this.tracks.find((t) => t.codec === codec);
      if (track) track.nacked += packets;
    });
    peer.on('state', (state) => send({ op: 'state', session: id, state, ...(state === 'connected' ? { pair: peer.selectedPair() } : {}) }));
    peer.on('candidate', (candidate) => send({ op: 'candidate', session: id, candidate }));
    peer.on('restarting', () => send({ op: 'ice-restarting', session: id }));
  }

  /** Answers the offer; candidates gathered before the answer is sent go with it (WHIP) or follow as events. */
  /** `historyMs`: how far back each track keeps whole GOPs (media-track.ts). */
  static async answer(req: Extract<Request, { op: 'answer' }>, send: (m: FromWorker) => void, log: Logger, historyMs = 0): Promise<{ session: WorkerSession; result: AnswerResult }> {
    const { peer, answer } = await PublisherPeer.answer(parseOffer(req.offer), { ice: req.ice, video: req.video, trickle: req.trickle });
    const session = new WorkerSession(req.session, peer, send, historyMs);
    // Candidates werift gathered while answering (trickle): the main thread hears of them now.
    for (const c of peer.localCandidates) send({ op: 'candidate', session: req.session, candidate: c });
    if (peer.gatheringComplete) send({ op: 'candidate', session: req.session, candidate: null });
    log.debug({ stream: req.stream, session: req.session }, 'media session created');
    return { session, result: { answer, tracks: peer.tracks, ignored: peer.ignored } };
  }

  /** A session of local tracks only (a composite's: see addLocalTrack), with no peer. */
  static local(id: string, send: (m: FromWorker) => void, historyMs = 0): WorkerSession {
    return new WorkerSession(id, undefined, send, historyMs);
  }

  addRemoteCandidate(c: CandidateInit | null): Promise<void> {
    return this.peer?.addRemoteCandidate(c) ?? Promise.resolve();
  }

  /** Trickled candidates or an ICE restart (see PublisherPeer.updateIce). */
  async updateIce(update: IceUpdate, trickle: boolean, mids?: string[]): Promise<IceUpdateResult> {
    if (!this.peer) return { restarted: false };
    const result = await this.peer.updateIce(update, { trickle, mids });
    // Whatever was lost while the path changed: outputs get a keyframe when media is back
    // (the policy repeats the request until one comes).
    if (result.restarted) this.keyframes.request();
    return result;
  }

  /** Asks the publisher for a keyframe, through the policy (merged, repeated until one comes, backed off for a publisher that ignores requests). */
  requestKeyframe(): void {
    this.keyframes.request();
  }

  /**
   * A track whose packets come from an ffmpeg of the gateway's on loopback (the stream's
   * shared AAC, or H.264 transcoded from VP8/VP9) rather than from the publisher: appended after the publisher's tracks, so
   * feeds send it like any other. It lives as long as the session.
   */
  async addLocalTrack(codec: ChosenCodec, latencyMs: number): Promise<LocalTrackResult> {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    const index = this.tracks.length;
    const track = new MediaTrack(codec, (sets) => this.send({ op: 'parameter-sets', session: this.id, track: index, sets }), latencyMs, true, this.historyMs);
    socket.on('message', (m) => {
      if (m.length > 1 && m[1] >= 192 && m[1] <= 223) return; // RTCP (RFC 5761): the encoder's reports
      try {
        track.receive(parseRtp(m));
      } catch {
        // not RTP (ffmpeg sends RTCP to the port above, never here): ignored
      }
    });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    this.sockets.push(socket);
    this.tracks[index] = track;
    return { track: index, port: (socket.address() as AddressInfo).port };
  }

  openFeed(id: number, targets: FeedTargetSpec[], encodes?: number): Feed {
    const attached = targets.flatMap((t) => (this.tracks[t.track] ? [{ track: this.tracks[t.track], host: t.host, port: t.port }] : []));
    // Video transcoded by the gateway (from VP8/VP9) has its keyframes at the segment
    // cadence from the encoder; a PLI would only make the publisher send a large VP8
    // keyframe, and no sooner an H.264 one.
    const transcoded = attached.some((a) => a.track.kind === 'video' && a.track.local);
    const encoded = encodes === undefined ? undefined : this.tracks[encodes];
    const video = this.tracks.find((t) => t.kind === 'video' && !t.local);
    // A shared encoder's first input starts at the moment of the publisher's cached keyframe
    // (see Feed's prime), and the track it makes knows from when it covers.
    const prime = encoded && encoded.lastPacketAt === 0 ? { from: () => video?.cachedKeyframeAt, started: (at: number) => (encoded.coversFrom ??= at) } : undefined;
    const feed = new Feed(attached, transcoded ? () => undefined : () => this.requestKeyframe(), prime);
    if (attached.some((a) => isTranscoded(a.track.codec))) this.watchTranscoder(id);
    feed.once('flowing', () => this.send({ op: 'flowing', feed: id }));
    this.feeds.set(id, feed);
    return feed;
  }

  closeFeed(id: number): void {
    this.feeds.get(id)?.close();
    this.feeds.delete(id);
    clearInterval(this.watchdogs.get(id));
    this.watchdogs.delete(id);
  }

  /**
   * A transcoder's input (feed `id`, VP8/VP9): while no transcoded picture has come back
   * for a while, the publisher is asked for a keyframe. ffmpeg's VP9 decoder, measured,
   * produced nothing from the keyframe the feed started at and needed the next one; a
   * restarted transcoder needs one too.
   */
  private watchTranscoder(id: number): void {
    this.watchdogs.set(id, setInterval(() => {
      const out = this.tracks.find((t) => t.local && t.kind === 'video');
      if (!out || performance.now() - out.lastPacketAt > TRANSCODER_SILENT_MS) this.requestKeyframe();
    }, TRANSCODER_SILENT_MS));
  }

  /** Tells the publisher the session is over (see PublisherPeer.announceClose). */
  announceClose(reason: string): Promise<unknown> {
    return this.peer?.announceClose(reason) ?? Promise.resolve();
  }

  stats(): SessionStats {
    const policy = this.keyframes.info();
    return {
      session: this.id,
      tracks: this.tracks.map((t) => {
        const stats = t.stats();
        if (t.kind !== 'video' || t.local) return stats;
        return {
          ...stats,
          ...(policy.intervalSeconds !== undefined ? { keyframeIntervalSeconds: policy.intervalSeconds } : {}),
          ...(policy.answersRequests !== undefined ? { answersKeyframeRequests: policy.answersRequests } : {}),
        };
      }),
      keyframeRequests: policy.requests,
      pair: this.peer?.selectedPair(),
      feeds: [...this.feeds].map(([id, f]) => [id, f.bytes]),
    };
  }

  async close(): Promise<void> {
    this.keyframes.close();
    for (const id of [...this.feeds.keys()]) this.closeFeed(id);
    await this.peer?.close();
    for (const s of this.sockets) s.close();
    for (const t of this.tracks) t.close();
  }
}
