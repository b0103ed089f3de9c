import type { Config } from '../config/schema.js';
import type { VideoBitrate } from '../sdp/answer.js';
import type { IceUpdate } from '../sdp/ice-fragment.js';
import type { IgnoredMedia } from '../sdp/offer.js';
import type { ChosenCodec } from '../webrtc/codec-policy.js';
import type { CandidateInit, SelectedPair } from '../webrtc/publisher-peer.js';

// What the main thread and a media worker say to each other. Everything here is small
// and rare (signalling, one stats message a second, keyframe requests, an output's feed
// opening and closing): no RTP packet ever crosses a thread. Requests carry an id and get
// exactly one reply; commands and events get none.

/** What a worker is started with (workerData). */
export interface WorkerSetup {
  index: number;
  logLevel: string;
  /** How often the worker reports its sessions' statistics. */
  statsIntervalMs: number;
  /** How far back (s) each track keeps whole GOPs, for feeds that start with a backlog. */
  historySeconds: number;
}

export type Request =
  | { op: 'answer'; session: string; stream: string; offer: string; ice: Config['ice']; video: VideoBitrate; trickle: boolean }
  | { op: 'candidate'; session: string; candidate: CandidateInit | null }
  /**
   * Candidates trickled after the answer, or new ICE credentials (a restart), from a WHIP
   * PATCH or a WebSocket re-offer (`mids`: that offer's sections). Replies IceUpdateResult.
   */
  | { op: 'ice-update'; session: string; update: IceUpdate; trickle: boolean; mids?: string[] }
  /**
   * A track fed from loopback instead of the publisher (the stream's shared AAC, which an
   * ffmpeg of the gateway's sends back as RTP): the worker binds a port for it.
   */
  | { op: 'local-track'; session: string; codec: ChosenCodec; latencyMs: number }
  /**
   * A session without a peer (a composite: its tracks are all local tracks, fed by the
   * gateway's compositor on loopback); it has no publisher to ask for keyframes.
   */
  | { op: 'local-session'; session: string; stream: string }
  | { op: 'close'; session: string }
  /**
   * A WHEP viewer of the session's stream (media/viewer-session.ts): answers its offer in
   * this worker, next to the session, and sends it the session's tracks. Replies ViewerAnswerResult.
   */
  | { op: 'viewer'; viewer: string; session: string; stream: string; offer: string; ice: Config['ice'] }
  /** A viewer's trickled candidates or ICE restart (WHEP PATCH). Replies IceUpdateResult. */
  | { op: 'viewer-ice'; viewer: string; update: IceUpdate }
  /** Ends a viewer (WHEP DELETE, the stream's end): it is told (RTCP BYE, close_notify). */
  | { op: 'viewer-close'; viewer: string; reason: string };

/** What the worker replies to each request, by its op. */
export interface Replies {
  answer: AnswerResult;
  candidate: undefined;
  'ice-update': IceUpdateResult;
  'local-track': LocalTrackResult;
  'local-session': undefined;
  close: undefined;
  viewer: ViewerAnswerResult;
  'viewer-ice': IceUpdateResult;
  'viewer-close': undefined;
}

export interface ViewerAnswerResult {
  answer: string;
  /** What the viewer gets, per section. */
  tracks: { kind: 'audio' | 'video'; codec: string; mid?: string }[];
  /** Sections of its offer answered with port 0, and why. */
  ignored: IgnoredMedia[];
}

/** One WHEP viewer, as its worker last saw it (every stats interval). */
export interface ViewerStats {
  viewer: string;
  session: string;
  state: string;
  packetsSent: number;
  /** RTP bytes sent, headers included. */
  bytesSent: number;
  kbps: number;
  /** Packets the viewer asked for again (NACK), and those sent again. */
  nacked: number;
  retransmitted: number;
  /** Keyframe requests (PLI, FIR) from the viewer. */
  keyframeRequests: number;
  /** Its receiver reports: the share of packets lost lately (0-100), and the round trip. */
  lossPercent?: number;
  rttMs?: number;
  /** From its transport-cc feedback: how much later than at its best the packets arrive (a queue on its path). */
  queueDelayMs?: number;
  /** False while its loss or queueing says its link does not carry the stream (media/viewer-health.ts). */
  keepingUp: boolean;
  iceRestarts: number;
  pair?: SelectedPair;
}

export type ReplyTo<R extends Request> = Replies[R['op']];

export interface IceUpdateResult {
  restarted: boolean;
  /** The new answer, after a restart. */
  answer?: string;
}

/** A local track: its index in the session (feeds name it by that) and the port it receives on. */
export interface LocalTrackResult {
  track: number;
  port: number;
}

/** Where an output's feed sends one track (the track by its index in the session). */
export interface FeedTargetSpec {
  track: number;
  host: string;
  port: number;
}

export type Command =
  | { op: 'keyframe'; session: string }
  /** The gateway ends the session: tell the publisher now (RTCP BYE, DTLS close_notify); 'close' follows once the outputs have stopped. */
  | { op: 'announce-close'; session: string; reason: string }
  /** Creates a feed; it sends nothing until 'feed-open'. */
  /** `encodes`: the local track this feed's ffmpeg encodes into (a shared encoder's input; see Feed's `prime`). */
  | { op: 'feed'; session: string; feed: number; targets: FeedTargetSpec[]; encodes?: number }
  /** `backlogSeconds`: start at a keyframe that far back in the tracks' history, sent at once (see Feed.open). */
  | { op: 'feed-open'; feed: number; keyframeIntervalSeconds?: number; backlogSeconds?: number }
  /** ffmpeg is being stopped: keep its input from going silent (see Feed.nudge). */
  | { op: 'feed-drain'; feed: number }
  | { op: 'feed-close'; feed: number };

export type ToWorker = (Request & { id: number }) | Command;

export interface AnswerResult {
  answer: string;
  tracks: ChosenCodec[];
  /** Sections offered to send that the answer rejects (port 0), with why. */
  ignored: IgnoredMedia[];
}

/** An error as it crosses the thread: its class name picks the class it becomes again. */
export interface WireError {
  name: string;
  message: string;
  status?: number;
  detail?: string;
  /** IceUpdateRefused: its code. */
  code?: string;
}

/** A track's counters, as the worker last saw them. */
export interface TrackStats {
  packets: number;
  bytes: number;
  bitrateKbps: number;
  keyframes: number;
  fps?: number;
  lost: number;
  nacked: number;
  /** Milliseconds since the last packet arrived (Infinity before the first). */
  idleMs: number;
  /** Video from the publisher: its own keyframe spacing, once learned (media/keyframe-policy.ts). */
  keyframeIntervalSeconds?: number;
  /** Video from the publisher: whether it answers keyframe requests, once asked. */
  answersKeyframeRequests?: boolean;
}

/** Sent when they change. H.264: SPS/PPS for session SDPs and the SPS's size; VP8/VP9: the keyframes' size. */
export interface ParameterSetInfo {
  sprop?: string;
  profileLevelId?: string;
  width?: number;
  height?: number;
}

export interface SessionStats {
  session: string;
  tracks: TrackStats[];
  keyframeRequests: number;
  /** Bytes each of the session's feeds sent so far, by feed id. */
  feeds: [feed: number, bytes: number][];
  /** The ICE candidate pair in use (it changes with an ICE restart, while the connection state stays "connected"). */
  pair?: SelectedPair;
}

export type FromWorker =
  | { op: 'ready' }
  | { op: 'reply'; id: number; ok: true; value?: Replies[keyof Replies] }
  | { op: 'reply'; id: number; ok: false; error: WireError }
  | { op: 'state'; session: string; state: string; pair?: SelectedPair }
  | { op: 'candidate'; session: string; candidate: CandidateInit | null }
  /** An ICE restart begins: local candidates that follow are the new ICE session's. */
  | { op: 'ice-restarting'; session: string }
  | { op: 'parameter-sets'; session: string; track: number; sets: ParameterSetInfo }
  | { op: 'flowing'; feed: number }
  /** `load`: the worker's event-loop utilisation since the last report (0-1). */
  | { op: 'stats'; load: number; sessions: SessionStats[]; viewers: ViewerStats[] }
  | { op: 'viewer-state'; viewer: string; state: string };
