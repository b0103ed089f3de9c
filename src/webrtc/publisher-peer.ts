import { EventEmitter } from 'node:events';
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  useFIR,
  useNACK,
  usePLI,
  type MediaStreamTrack,
  type RTCRtpTransceiver,
  type RtpPacket,
} from 'werift';
import type { Config } from '../config/schema.js';
import type { RtpPacketLite } from '../rtp/packet.js';
import { formatFmtp } from '../sdp/render.js';
import { shapeAnswer, transportCcExtensionIds, type AnswerAdditions, type VideoBitrate } from '../sdp/answer.js';
import type { IceUpdate } from '../sdp/ice-fragment.js';
import { withoutMdnsCandidates, writeSdp, type IgnoredMedia, type ParsedOffer } from '../sdp/offer.js';
import { chooseCodecs, restrictOffer, type ChosenCodec } from './codec-policy.js';
import { announceClose } from '../werift/close-notify.js';
import { CongestionFeedback } from './congestion-feedback.js';
import { SsrcFollower } from './ssrc-follower.js';
import { gatewayServers, peerConfig } from './ice-options.js';
import { keepToConfiguredStun } from '../werift/stun-default.js';
import { IceUpdates, OfferNotAnswerable, selectedPairOf, waitForGathering, type CandidateInit, type SelectedPair } from './ice-updates.js';

export { OfferNotAnswerable, type CandidateInit };


// One publisher's werift peer connection, in its media worker (media/worker-session.ts):
// answers the offer with the codec policy, hands decrypted RTP out as plain packets, and
// takes keyframe requests and ICE updates. The rest of the worker talks to it only
// through the events below and its methods.

export interface PublisherPeerEvents {
  /** A decrypted RTP packet of the primary codec of one track. */
  rtp: [track: ChosenCodec, packet: RtpPacketLite];
  /** werift's connection state: new, connecting, connected, disconnected, failed, closed. */
  state: [state: string];
  /** A local ICE candidate (trickle), or null when gathering is complete. */
  candidate: [candidate: CandidateInit | null];
  /** werift sent a NACK for `packets` packets of this track (a packet may be asked for again). */
  nack: [track: ChosenCodec, packets: number];
  /** Video now comes from an SSRC the offer did not announce (a restarted encoder): a keyframe is needed. */
  source: [track: ChosenCodec, ssrc: number];
  /** An ICE restart begins: the local candidates that follow are the new session's. */
  restarting: [];
}

export type { SelectedPair };

/**
 * The gateway cannot answer for a reason of its own (no ICE candidate could be gathered:
 * addresses misconfigured, port range exhausted): 503, not the client's fault.
 */
export class AnswerUnavailable extends Error {}

export interface AnswerOptions {
  ice: Config['ice'];
  /** The publisher's video bitrate range, written into the answer. */
  video: VideoBitrate;
  /** Answer at once and trickle candidates (WebSocket), instead of waiting for all (WHIP). */
  trickle?: boolean;
}

export class PublisherPeer extends EventEmitter<PublisherPeerEvents> {
  private feedback: CongestionFeedback | undefined;
  private readonly follower: SsrcFollower;
  private readonly videoSsrc = new Map<number, number>(); // m-section index -> last SSRC seen
  /** Transceivers by the offer m-section index of their track (werift makes none for a rejected section). */
  private readonly receivers = new Map<number, RTCRtpTransceiver>();
  /** Each watched transceiver's way to its track (see watchTransceiver). */
  private readonly watched = new Map<RTCRtpTransceiver, () => ChosenCodec | undefined>();
  private closed = false;
  private announced: Promise<unknown> | undefined;
  /** Local candidates gathered so far in this ICE session (a late listener can catch up). */
  readonly localCandidates: CandidateInit[] = [];
  gatheringComplete = false;
  /** Trickled candidates and ICE restarts after the answer (webrtc/ice-updates.ts). */
  private ice: IceUpdates | undefined;
  /** What shapeAnswer adds to each answer (a restart's too). */
  private shape: AnswerAdditions | undefined;

  private constructor(
    private readonly pc: RTCPeerConnection,
    readonly tracks: ChosenCodec[],
    /** Sections the publisher offered to send that the answer rejects, and why. */
    readonly ignored: IgnoredMedia[],
  ) {
    super();
    this.follower = new SsrcFollower(
      tracks,
      (codec, rtp) => this.deliver(codec, rtp),
      (codec, ssrc) => {
        // A new SSRC: PLIs go to it, and whoever owns the keyframe policy asks for one.
        if (codec.kind !== 'video') return;
        this.videoSsrc.set(codec.index, ssrc);
        this.emit('source', codec, ssrc);
      },
    );
  }

  /**
   * Builds the peer for a parsed offer and returns it with the SDP answer. For WHIP the
   * answer holds every candidate (the server does not trickle); with `trickle` it comes at
   * once and candidates follow as 'candidate' events (WebSocket signalling). Throws
   * SdpError (406) when no acceptable codec was offered.
   */
  static async answer(offer: ParsedOffer, { ice, video, trickle = false }: AnswerOptions): Promise<{ peer: PublisherPeer; answer: string }> {
    const { tracks, ignored } = chooseCodecs(offer);
    const servers = gatewayServers(ice);
    const pc = new RTCPeerConnection(
      peerConfig(ice, servers, {
        video: tracks.filter((t) => t.kind === 'video').flatMap(weriftCodecs),
        audio: tracks.filter((t) => t.kind === 'audio').flatMap(weriftCodecs),
      }),
    );
    const peer = new PublisherPeer(pc, tracks, ignored);
    pc.onTransceiverAdded.subscribe((t) => peer.watchTransceiver(t));
    pc.connectionStateChange.subscribe((state) => peer.emit('state', state));
    pc.onIceCandidate.subscribe((c) => {
      const init = c ? { candidate: c.candidate, sdpMid: c.sdpMid ?? undefined, sdpMLineIndex: c.sdpMLineIndex ?? undefined } : null;
      if (init) peer.localCandidates.push(init);
      else peer.gatheringComplete = true;
      peer.emit('candidate', init);
    });
    pc.iceGatheringStateChange.subscribe((s) => {
      if (s === 'complete' && !peer.gatheringComplete) {
        peer.gatheringComplete = true;
        peer.emit('candidate', null);
      }
    });
    try {
      try {
        const remoteOffer = writeSdp(withoutMdnsCandidates(restrictOffer(offer.sdp, tracks, ignored)));
        await pc.setRemoteDescription({ type: 'offer', sdp: remoteOffer });
        peer.ice = new IceUpdates(pc, remoteOffer, {
          servers,
          mids: tracks.flatMap((t) => (t.mid !== undefined ? [t.mid] : [])),
          shape: (local) => (peer.shape ? shapeAnswer(local, peer.shape) : local),
          // werift is half-way through a renegotiation: this peer cannot go on. Said as a
          // failure (the stream ends as lost, not as if the publisher had hung up).
          failed: () => {
            peer.emit('state', 'failed');
            void peer.close('ICE restart failed');
          },
          restarting: () => {
            peer.emit('restarting');
            peer.localCandidates.length = 0;
            peer.gatheringComplete = false;
          },
        });
        for (const t of pc.getTransceivers()) {
          peer.watchTransceiver(t);
          t.setDirection('recvonly');
        }
        keepToConfiguredStun(pc, servers);
        await pc.setLocalDescription(await pc.createAnswer());
      } catch (e) {
        throw new OfferNotAnswerable((e as Error).message ?? String(e));
      }
      if (!trickle) await waitForGathering(pc);
      const local = pc.localDescription?.sdp;
      if (!local) throw new OfferNotAnswerable('werift produced no answer');
      if (!trickle && !/^a=candidate:/m.test(local)) throw new AnswerUnavailable('the gateway could not gather any ICE candidate (check ice.addresses, and whether ice.portRange has a free port)');
      const twccIds = transportCcExtensionIds(local);
      const shape: AnswerAdditions = { video, transportCc: twccIds.length > 0, rejected: ignored };
      peer.shape = shape;
      const answer = shapeAnswer(local, shape);
      if (twccIds.length > 0) peer.feedback = new CongestionFeedback(pc, twccIds);
      for (const dtls of new Set(pc.dtlsTransports)) dtls.onRtp.subscribe((rtp) => !peer.closed && peer.follower.transportPacket(rtp));
      return { peer, answer };
    } catch (e) {
      await pc.close().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Subscribes to a transceiver's packets (werift adds it during setRemoteDescription,
   * before it knows its mid). Its track is found by mid once it has one: werift makes no
   * transceiver for a rejected section, so positions do not match the offer's.
   */
  private watchTransceiver(t: RTCRtpTransceiver): void {
    const known = this.watched.get(t);
    if (known) return void known();
    let chosen: ChosenCodec | undefined;
    const chosenFor = (): ChosenCodec | undefined => {
      chosen ??= this.tracks.find((c) => (c.mid !== undefined ? c.mid === t.mid : c.index === this.pc.getTransceivers().indexOf(t)));
      if (chosen) this.receivers.set(chosen.index, t);
      return chosen;
    };
    this.watched.set(t, chosenFor);
    t.receiver.onPacketLost.subscribe((nack) => {
      const c = chosenFor();
      if (c && !this.closed) this.emit('nack', c, nack.lost.length);
    });
    t.onTrack.subscribe((track: MediaStreamTrack) => {
      const c = chosenFor();
      if (!c) return;
      track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
        // Only the primary payload goes on (werift already unwrapped RTX); RED/FEC are dropped.
        if (rtp.header.payloadType !== c.payloadType || this.closed) return;
        this.follower.weriftDelivered(c, rtp);
        if (c.kind === 'video') this.videoSsrc.set(c.index, rtp.header.ssrc);
        this.deliver(c, rtp);
      });
    });
    chosenFor();
  }

  private deliver(chosen: ChosenCodec, rtp: RtpPacket): void {
    this.emit('rtp', chosen, {
      payloadType: rtp.header.payloadType,
      sequenceNumber: rtp.header.sequenceNumber,
      timestamp: rtp.header.timestamp,
      ssrc: rtp.header.ssrc,
      marker: rtp.header.marker,
      payload: rtp.payload,
    });
  }

  /**
   * A candidate from the publisher (trickle ICE); null or empty means end of candidates.
   * One of an earlier ICE session (a late one after a restart) is dropped.
   */
  async addRemoteCandidate(c: CandidateInit | null): Promise<void> {
    await this.ice?.addCandidate(c);
  }

  /**
   * Trickled candidates or an ICE restart after the answer (WHIP PATCH, a WebSocket
   * re-offer): see IceUpdates.update. Throws IceUpdateRefused saying why not.
   */
  updateIce(update: IceUpdate, options: { trickle?: boolean; mids?: string[] } = {}): Promise<{ restarted: boolean; answer?: string }> {
    if (!this.ice) return Promise.reject(new Error('not answered yet'));
    return this.ice.update(update, options);
  }

  /** ICE restarts so far. */
  get iceRestarts(): number {
    return this.ice?.restarts ?? 0;
  }

  /**
   * Sends a PLI for every video track now (needs `nack pli`, which the codec policy
   * negotiates). Only the keyframe policy (media/keyframe-policy.ts) calls it.
   */
  requestKeyframe(): void {
    if (this.closed) return;
    for (const [index, ssrc] of this.videoSsrc) {
      const t = this.receivers.get(index);
      void t?.receiver.sendRtcpPLI(ssrc);
    }
  }

  get connectionState(): string {
    return this.pc.connectionState;
  }

  /** The ICE candidate pair in use, once connected. */
  selectedPair(): SelectedPair | undefined {
    return selectedPairOf(this.pc);
  }

  /**
   * Tells the publisher the session is over (RTCP BYE and DTLS close_notify, see
   * close-notify.ts), once; media may still arrive until close().
   */
  announceClose(reason: string): Promise<unknown> {
    this.announced ??= announceClose(this.pc, reason).catch(() => 0);
    return this.announced;
  }

  async close(reason = 'session ended'): Promise<void> {
    if (this.closed) return;
    await this.announceClose(reason);
    this.closed = true;
    if (this.ice) this.ice.closed = true;
    this.feedback?.close();
    await this.pc.close().catch(() => undefined);
  }
}

/** The codec (and RTX) werift should answer with, feedback chosen by the gateway. */
function weriftCodecs(c: ChosenCodec): RTCRtpCodecParameters[] {
  const mimeType = `${c.kind}/${c.name}`;
  if (c.kind === 'audio') {
    return [
      new RTCRtpCodecParameters({
        mimeType,
        clockRate: c.clockRate,
        channels: c.name === 'opus' ? 2 : undefined,
        payloadType: c.payloadType,
        parameters: formatFmtp(c.fmtp) || undefined,
        // transport-cc is added to the answer, not here (see restrictOffer).
        rtcpFeedback: [],
      }),
    ];
  }
  const codecs = [
    new RTCRtpCodecParameters({
      mimeType,
      clockRate: c.clockRate,
      payloadType: c.payloadType,
      parameters: formatFmtp(c.fmtp),
      rtcpFeedback: [useNACK(), usePLI(), useFIR()], // + transport-cc in the answer (see above)
    }),
  ];
  if (c.rtxPayloadType !== undefined) {
    codecs.push(
      new RTCRtpCodecParameters({
        mimeType: 'video/rtx',
        clockRate: c.clockRate,
        payloadType: c.rtxPayloadType,
        parameters: `apt=${c.payloadType}`,
      }),
    );
  }
  return codecs;
}
