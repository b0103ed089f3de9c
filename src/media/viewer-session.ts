import {
  GenericNack,
  RtcpPayloadSpecificFeedback,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
  RtcpTransportLayerFeedback,
  TransportWideCC,
  type RtcpPacket,
} from 'werift';
import type { Logger } from '../log.js';
import { ContinuousStream } from '../rtp/continuity.js';
import { keyframeStartFor } from '../rtp/keyframes.js';
import { PacketHistory } from '../rtp/packet-history.js';
import type { RtpPacketLite } from '../rtp/packet.js';
import type { IceUpdate } from '../sdp/ice-fragment.js';
import { parseViewerOffer } from '../sdp/viewer-offer.js';
import { chooseViewerCodecs } from '../webrtc/viewer-codecs.js';
import { ViewerPeer, type ViewerOutlet } from '../webrtc/viewer-peer.js';
import type { MediaTrack } from './media-track.js';
import { RateWindow } from './rate-window.js';
import { twccResults, ViewerHealth } from './viewer-health.js';
import type { FromWorker, IceUpdateResult, Request, ViewerAnswerResult, ViewerStats } from './worker-messages.js';
import type { WorkerSession } from './worker-session.js';

// A WHEP viewer in its media worker, next to the session of the stream it watches: its
// werift peer (webrtc/viewer-peer.ts) and, per track it gets, the packets of the
// session's MediaTrack as they arrive, renumbered for it (rtp/continuity.ts) and sent at
// once. No per-packet work waits on anything, and nothing crosses a thread.
//
// - Start: video at the cached keyframe, at once (the packets since the track's latest
//   keyframe, sent in one go, then live); without one, at the next keyframe, which the
//   session's keyframe policy is asked for. Audio from the moment the viewer connects.
// - Retransmissions: one packet history per track (rtp/packet-history.ts), shared by the
//   track's viewers, answers their NACKs (at most RETRANSMIT_PER_SECOND per viewer).
// - Keyframe requests (PLI, FIR) go to the session's keyframe policy, which merges them
//   with everyone else's, and at most one per VIEWER_KEYFRAME_MS per stream from viewers:
//   a viewer on a lossy link must not make the publisher send keyframes all the time.
//   Tracks the gateway makes itself (a transcode, a composite) keep their own cadence.
// - Receiver reports and transport-cc feedback are read (media/viewer-health.ts); sender
//   reports go out every SR_INTERVAL_MS (their NTP time is when the packets reached the
//   gateway, the same clock for audio and video, for the browser's lip sync).

/** Packets kept per track for retransmissions: ~2 s of 720p video at 2.5 Mbit/s. */
const HISTORY_PACKETS = 1024;
const RETRANSMIT_PER_SECOND = 300;
export const VIEWER_KEYFRAME_MS = 1000;
const SR_INTERVAL_MS = 1000;
/** Seconds from 1900 (NTP) to 1970. */
const NTP_EPOCH_OFFSET = 2208988800;

/** A session track's packets, fanned out to its viewers, and its history for their NACKs. */
interface Source {
  history: PacketHistory;
  viewers: Set<ViewerTrack>;
  unsubscribe: () => void;
}

const sources = new WeakMap<MediaTrack, Source>();

function attach(track: MediaTrack, v: ViewerTrack): Source {
  let s = sources.get(track);
  if (!s) {
    const history = new PacketHistory(track.kind === 'video' ? HISTORY_PACKETS : 256);
    const viewers = new Set<ViewerTrack>();
    const unsubscribe = track.subscribeArrivals((p) => {
      history.put(p);
      for (const viewer of viewers) viewer.arrived(p);
    });
    s = { history, viewers, unsubscribe };
    sources.set(track, s);
  }
  s.viewers.add(v);
  return s;
}

function detach(track: MediaTrack, v: ViewerTrack): void {
  const s = sources.get(track);
  if (!s) return;
  s.viewers.delete(v);
  if (s.viewers.size === 0) {
    s.unsubscribe();
    s.history.clear();
    sources.delete(track);
  }
}

/** Viewers' keyframe requests per publisher session: at most one per VIEWER_KEYFRAME_MS, the rest merged into it. */
const limiters = new WeakMap<object, { last: number; timer?: NodeJS.Timeout }>();

export function viewerKeyframeRequest(session: Pick<WorkerSession, 'requestKeyframe'>): void {
  let l = limiters.get(session);
  if (!l) limiters.set(session, (l = { last: -Infinity }));
  if (l.timer) return;
  const wait = l.last + VIEWER_KEYFRAME_MS - performance.now();
  const fire = (limiter: { last: number; timer?: NodeJS.Timeout }) => {
    limiter.timer = undefined;
    limiter.last = performance.now();
    session.requestKeyframe();
  };
  if (wait <= 0) fire(l);
  else l.timer = setTimeout(() => fire(l), wait);
}

/** One track as one viewer gets it. */
class ViewerTrack {
  readonly stream: ContinuousStream;
  private started = false;
  private source: Source | undefined;
  private readonly startsKeyframe: ((payload: Buffer) => boolean) | undefined;
  sent = 0;

  constructor(
    private readonly viewer: ViewerSession,
    readonly outlet: ViewerOutlet,
    readonly track: MediaTrack,
  ) {
    this.stream = new ContinuousStream(outlet.clockRate, outlet.ssrc);
    this.startsKeyframe = track.kind === 'video' ? keyframeStartFor(track.codec.name) : undefined;
  }

  /** The viewer is connected: send from the cached keyframe (video) or from now (audio). */
  start(): void {
    if (this.source) return;
    const cached = this.startsKeyframe ? this.track.cached() : [];
    this.source = attach(this.track, this);
    if (!this.startsKeyframe) {
      this.started = true;
      return;
    }
    if (cached.length && this.startsKeyframe(cached[0].payload)) {
      this.started = true;
      for (const p of cached) this.send(p);
    } else if (!this.track.local) {
      this.viewer.session.requestKeyframe();
    }
  }

  arrived(p: RtpPacketLite): void {
    if (!this.started) {
      if (!this.startsKeyframe?.(p.payload)) return;
      this.started = true;
    }
    this.send(p);
  }

  private send(p: RtpPacketLite): void {
    const now = performance.now();
    const m = this.stream.map(p, now);
    if (m) this.viewer.transmit(this.outlet, m.sequenceNumber, m.timestamp, p.marker, p.payload, now);
  }

  /** The viewer asks again for output packet `seq`: sent from the track's history if it is still there. */
  retransmit(seq: number): boolean {
    const src = this.stream.sourceOf(seq);
    const p = src && this.source?.history.get(src.ssrc, src.sequenceNumber);
    const m = p && this.stream.again(p);
    if (!p || !m) return false;
    this.viewer.transmit(this.outlet, m.sequenceNumber, m.timestamp, p.marker, p.payload, performance.now());
    return true;
  }

  close(): void {
    if (this.source) detach(this.track, this);
    this.source = undefined;
  }
}

export class ViewerSession {
  private readonly tracks: ViewerTrack[];
  private readonly health = new ViewerHealth();
  private readonly rate = new RateWindow();
  private nacked = 0;
  private retransmitted = 0;
  private keyframeRequests = 0;
  /** Retransmission budget (a token bucket refilled at RETRANSMIT_PER_SECOND). */
  private budget = RETRANSMIT_PER_SECOND;
  private budgetAt = performance.now();
  private readonly srTimer: NodeJS.Timeout;
  /** Sender reports sent: their compact NTP time -> when (for the round trip from receiver reports). */
  private readonly reports = new Map<number, number>();
  private rttMs: number | undefined;
  private closed = false;

  private constructor(
    readonly id: string,
    readonly session: WorkerSession,
    private readonly peer: ViewerPeer,
    private readonly send: (m: FromWorker) => void,
  ) {
    this.tracks = peer.outlets.flatMap((o) => (session.tracks[o.track] ? [new ViewerTrack(this, o, session.tracks[o.track])] : []));
    peer.on('state', (state) => {
      send({ op: 'viewer-state', viewer: id, state });
      if (state === 'connected') for (const t of this.tracks) t.start();
    });
    peer.on('rtcp', (p) => this.rtcp(p));
    this.srTimer = setInterval(() => this.senderReports(), SR_INTERVAL_MS);
  }

  /** Answers a viewer's offer with what `session` has (see viewer-codecs.ts); throws SdpError (400, 406) or OfferNotAnswerable. */
  static async answer(req: Extract<Request, { op: 'viewer' }>, session: WorkerSession, send: (m: FromWorker) => void, log: Logger): Promise<{ viewer: ViewerSession; result: ViewerAnswerResult }> {
    const offer = parseViewerOffer(req.offer);
    const codecs = chooseViewerCodecs(offer, session.tracks.map((t, track) => ({ track, codec: t.codec, local: t.local })));
    const { peer, answer } = await ViewerPeer.answer(offer, codecs, { ice: req.ice, streamId: `gateway-${req.stream}` });
    const viewer = new ViewerSession(req.viewer, session, peer, send);
    log.debug({ stream: req.stream, session: req.session, viewer: req.viewer }, 'viewer session created');
    return {
      viewer,
      result: { answer, ignored: codecs.ignored, tracks: codecs.chosen.map((c) => ({ kind: c.codec.kind, codec: c.codec.name, ...(c.codec.mid !== undefined ? { mid: c.codec.mid } : {}) })) },
    };
  }

  /** Encrypts and sends one packet to the viewer (ViewerTrack calls it). */
  transmit(outlet: ViewerOutlet, seq: number, ts: number, marker: boolean, payload: Buffer, now: number): void {
    const wide = this.peer.send(outlet, seq, ts, marker, payload);
    if (wide === undefined) return;
    this.health.sent(wide, now);
    this.rate.add(now, payload.length + 12);
  }

  private rtcp(packet: RtcpPacket): void {
    const now = performance.now();
    if (packet instanceof RtcpRrPacket || packet instanceof RtcpSrPacket) {
      for (const r of packet.reports) {
        if (!this.tracks.some((t) => t.outlet.ssrc === r.ssrc)) continue;
        this.health.report(r.fractionLost / 256);
        const sentAt = r.lsr ? this.reports.get(r.lsr) : undefined;
        if (sentAt !== undefined) this.rttMs = Math.max(0, Math.round(now - sentAt - (r.dlsr / 65536) * 1000));
      }
    } else if (packet instanceof RtcpTransportLayerFeedback) {
      const fb = packet.feedback;
      if (fb instanceof GenericNack) {
        const t = this.tracks.find((x) => x.outlet.ssrc === fb.mediaSourceSsrc);
        if (!t) return;
        this.refill(now);
        for (const seq of fb.lost) {
          this.nacked++;
          if (this.budget < 1) continue;
          if (t.retransmit(seq)) {
            this.budget--;
            this.retransmitted++;
          }
        }
      } else if (fb instanceof TransportWideCC) {
        this.health.feedback(twccResults(fb), now);
      }
    } else if (packet instanceof RtcpPayloadSpecificFeedback) {
      const count = packet.feedback?.count;
      if (count !== 1 && count !== 4) return; // PLI, FIR (REMB is not used)
      this.keyframeRequests++;
      if (this.tracks.some((t) => t.track.kind === 'video' && !t.track.local)) viewerKeyframeRequest(this.session);
    }
  }

  private refill(now: number): void {
    this.budget = Math.min(RETRANSMIT_PER_SECOND, this.budget + ((now - this.budgetAt) / 1000) * RETRANSMIT_PER_SECOND);
    this.budgetAt = now;
  }

  /** An SR per track that has sent: its RTP time now, against the wall clock now. */
  private senderReports(): void {
    if (!this.peer.ready) return;
    const now = performance.now();
    const ntp = ntpTime(performance.timeOrigin + now);
    const compact = Number((ntp >> 16n) & 0xffffffffn);
    this.reports.set(compact, now);
    if (this.reports.size > 8) this.reports.delete(this.reports.keys().next().value as number);
    for (const t of this.tracks) {
      const rtpTimestamp = t.stream.timestampAt(now);
      if (rtpTimestamp === undefined) continue;
      const sr = new RtcpSrPacket({
        ssrc: t.outlet.ssrc,
        senderInfo: new RtcpSenderInfo({ ntpTimestamp: ntp, rtpTimestamp, packetCount: this.peer.packetsSent, octetCount: this.peer.bytesSent }),
      });
      this.peer.sendRtcp(sr);
    }
  }

  addRemoteCandidate = (c: Parameters<ViewerPeer['addRemoteCandidate']>[0]): Promise<void> => this.peer.addRemoteCandidate(c);

  updateIce(update: IceUpdate): Promise<IceUpdateResult> {
    return this.peer.updateIce(update);
  }

  stats(): ViewerStats {
    const now = performance.now();
    const loss = this.health.lossPercent;
    const queue = this.health.queueDelayMs;
    const pair = this.peer.selectedPair();
    return {
      viewer: this.id,
      session: this.session.id,
      state: this.peer.connectionState,
      packetsSent: this.peer.packetsSent,
      bytesSent: this.peer.bytesSent,
      kbps: this.rate.kbps(now),
      nacked: this.nacked,
      retransmitted: this.retransmitted,
      keyframeRequests: this.keyframeRequests,
      ...(loss !== undefined ? { lossPercent: Math.round(loss * 10) / 10 } : {}),
      ...(this.rttMs !== undefined ? { rttMs: this.rttMs } : {}),
      ...(queue !== undefined ? { queueDelayMs: queue } : {}),
      keepingUp: this.health.keepingUp,
      iceRestarts: this.peer.iceRestarts,
      ...(pair ? { pair } : {}),
    };
  }

  /** Tells the viewer it is over (RTCP BYE, close_notify) and closes its peer. */
  async close(reason: string): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.srTimer);
    for (const t of this.tracks) t.close();
    await this.peer.close(reason);
  }
}

/** NTP time (RFC 5905: 32.32 fixed point, seconds since 1900) of a Unix time in ms. */
export function ntpTime(unixMs: number): bigint {
  const seconds = Math.floor(unixMs / 1000);
  const fraction = Math.floor(((unixMs % 1000) / 1000) * 2 ** 32);
  return (BigInt(seconds + NTP_EPOCH_OFFSET) << 32n) | BigInt(fraction);
}
