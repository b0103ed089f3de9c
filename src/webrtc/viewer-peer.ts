import { EventEmitter } from 'node:events';
import * as sdpTransform from 'sdp-transform';
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  useFIR,
  useNACK,
  usePLI,
  type RTCDtlsTransport,
  type RTCRtpTransceiver,
  type RtcpPacket,
} from 'werift';
import type { Config } from '../config/schema.js';
import { TRANSPORT_CC_URI } from '../sdp/answer.js';
import type { IceUpdate } from '../sdp/ice-fragment.js';
import { withoutMdnsCandidates, writeSdp, type IgnoredMedia } from '../sdp/offer.js';
import type { ParsedViewerOffer } from '../sdp/viewer-offer.js';
import { formatFmtp } from '../sdp/render.js';
import { announceClose } from '../werift/close-notify.js';
import { rawRtcp } from '../werift/raw-rtcp.js';
import { keepToConfiguredStun } from '../werift/stun-default.js';
import { restrictOffer, type ChosenCodec } from './codec-policy.js';
import { AnswerUnavailable } from './publisher-peer.js';
import { IceUpdates, OfferNotAnswerable, selectedPairOf, waitForGathering, type CandidateInit, type SelectedPair } from './ice-updates.js';
import { gatewayServers, peerConfig } from './ice-options.js';
import type { ViewerCodecs } from './viewer-codecs.js';

// One WHEP viewer's werift peer connection, in the media worker of the stream it watches
// (media/viewer-session.ts): it answers the viewer's recvonly offer with sendonly sections
// (the codecs viewer-codecs.ts chose), and sends RTP the session hands it, encrypted for
// this viewer, on its own transport. werift's RTCRtpSender is not used to send: the
// gateway writes each packet's header itself (its SSRC, sequence numbers and timestamps,
// which stay continuous across the stream's changes: rtp/continuity.ts; the mid and the
// transport-wide sequence number the viewer's congestion feedback refers to) and hands it
// to the DTLS transport's SRTP, so no promise and no copy per packet, and RTCP from the
// viewer (receiver reports, NACK, PLI, FIR, transport-cc) comes out as it arrives.

export interface ViewerPeerEvents {
  /** werift's connection state: new, connecting, connected, disconnected, failed, closed. */
  state: [state: string];
  /** An RTCP packet from the viewer. */
  rtcp: [packet: RtcpPacket];
  /** An ICE restart begins. */
  restarting: [];
}

/** Where one track goes in this viewer's session. */
export interface ViewerOutlet {
  /** The stream track (its index in the media worker). */
  track: number;
  kind: 'audio' | 'video';
  mid?: string;
  payloadType: number;
  clockRate: number;
  /** The SSRC the viewer was told in the answer (werift's sender's). */
  ssrc: number;
  /** The mid as its header extension's payload (made once, not per packet). */
  midBytes?: Buffer;
}

export interface ViewerAnswerOptions {
  ice: Config['ice'];
  /** The msid stream id: both tracks in one stream, so the browser keeps them in sync. */
  streamId: string;
}

export class ViewerPeer extends EventEmitter<ViewerPeerEvents> {
  readonly outlets: ViewerOutlet[];
  private closed = false;
  private announced: Promise<unknown> | undefined;
  private ice: IceUpdates | undefined;
  private dtls: RTCDtlsTransport | undefined;
  /** Header extension ids from the answer. */
  private midId: number | undefined;
  private twccId: number | undefined;
  private twccSeq = 0;
  /** Packets handed to SRTP, and their bytes (headers included). */
  packetsSent = 0;
  bytesSent = 0;

  private constructor(
    private readonly pc: RTCPeerConnection,
    outlets: ViewerOutlet[],
    /** Sections answered with port 0, and why. */
    readonly ignored: IgnoredMedia[],
  ) {
    super();
    this.outlets = outlets;
  }

  /** Builds the peer for a viewer's offer and returns it with the SDP answer (every gateway candidate in it). */
  static async answer(offer: ParsedViewerOffer, codecs: ViewerCodecs, { ice, streamId }: ViewerAnswerOptions): Promise<{ peer: ViewerPeer; answer: string }> {
    const servers = gatewayServers(ice);
    const chosen = codecs.chosen.map((c) => c.codec);
    const pc = new RTCPeerConnection(
      peerConfig(ice, servers, {
        video: chosen.filter((c) => c.kind === 'video').map(weriftCodec),
        audio: chosen.filter((c) => c.kind === 'audio').map(weriftCodec),
      }),
    );
    let peer: ViewerPeer | undefined;
    try {
      let transceivers: { t: RTCRtpTransceiver; choice: ViewerCodecs['chosen'][number] }[];
      const remoteOffer = writeSdp(withoutMdnsCandidates(restrictOffer(offer.sdp, chosen, codecs.ignored)));
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp: remoteOffer });
        const all = pc.getTransceivers();
        transceivers = codecs.chosen.flatMap((choice) => {
          const t = all.find((x) => (choice.codec.mid !== undefined ? x.mid === choice.codec.mid : x.mLineIndex === choice.codec.index));
          return t ? [{ t, choice }] : [];
        });
        for (const t of all) t.setDirection(transceivers.some((x) => x.t === t) ? 'sendonly' : 'inactive');
        for (const { t } of transceivers) t.sender.streamId = streamId;
        keepToConfiguredStun(pc, servers);
        await pc.setLocalDescription(await pc.createAnswer());
      } catch (e) {
        throw new OfferNotAnswerable((e as Error).message ?? String(e));
      }
      await waitForGathering(pc);
      const local = pc.localDescription?.sdp;
      if (!local) throw new OfferNotAnswerable('werift produced no answer');
      if (!/^a=candidate:/m.test(local)) throw new AnswerUnavailable('the gateway could not gather any ICE candidate (check ice.addresses, and whether ice.portRange has a free port)');
      const outlets = transceivers.map(({ t, choice }) => ({
        track: choice.track,
        kind: choice.codec.kind,
        mid: t.mid ?? undefined,
        payloadType: choice.codec.payloadType,
        clockRate: choice.codec.clockRate,
        ssrc: t.sender.ssrc,
        ...(t.mid ? { midBytes: Buffer.from(t.mid) } : {}),
      }));
      const p = new ViewerPeer(pc, outlets, codecs.ignored);
      peer = p;
      const answer = shapeViewerAnswer(local, codecs.ignored);
      p.readExtensionIds(answer);
      p.ice = new IceUpdates(pc, remoteOffer, {
        servers,
        mids: outlets.flatMap((o) => (o.mid !== undefined ? [o.mid] : [])),
        shape: (sdp) => shapeViewerAnswer(sdp, codecs.ignored),
        failed: () => void p.close('ICE restart failed'),
        restarting: () => p.emit('restarting'),
      });
      pc.connectionStateChange.subscribe((state) => p.emit('state', state));
      for (const dtls of new Set(pc.dtlsTransports)) {
        p.dtls ??= dtls;
        dtls.onRtcp.subscribe((packet) => !p.closed && p.emit('rtcp', packet));
      }
      return { peer: p, answer };
    } catch (e) {
      if (peer) await peer.close();
      else await pc.close().catch(() => undefined);
      throw e;
    }
  }

  private readExtensionIds(answer: string): void {
    for (const m of sdpTransform.parse(answer).media) {
      for (const e of m.ext ?? []) {
        if (e.uri === 'urn:ietf:params:rtp-hdrext:sdes:mid') this.midId ??= e.value;
        if (e.uri === TRANSPORT_CC_URI) this.twccId ??= e.value;
      }
    }
  }

  /** Whether packets can go out (DTLS connected). */
  get ready(): boolean {
    return !this.closed && this.dtls?.state === 'connected';
  }

  /**
   * Encrypts and sends one packet of `outlet` now (the UDP send itself is not waited for).
   * Returns the transport-wide sequence number it carries (undefined when not sent).
   */
  send(outlet: ViewerOutlet, sequenceNumber: number, timestamp: number, marker: boolean, payload: Buffer): number | undefined {
    const dtls = this.dtls;
    if (!dtls || this.closed || dtls.state !== 'connected') return undefined;
    const extensions: { id: number; payload: Buffer }[] = [];
    if (this.midId !== undefined && outlet.midBytes) extensions.push({ id: this.midId, payload: outlet.midBytes });
    let wide: number | undefined;
    if (this.twccId !== undefined) {
      wide = this.twccSeq = (this.twccSeq + 1) & 0xffff;
      const b = Buffer.allocUnsafe(2);
      b.writeUInt16BE(wide);
      extensions.push({ id: this.twccId, payload: b });
    }
    const header = new RtpHeader({ payloadType: outlet.payloadType, sequenceNumber, timestamp, ssrc: outlet.ssrc, marker, extensions });
    this.packetsSent++;
    this.bytesSent += payload.length + 12;
    void dtls.sendRtp(payload, header);
    return wide;
  }

  /** Sends RTCP the gateway built (sender reports). */
  sendRtcp(...packets: { serialize(): Buffer }[]): void {
    if (this.ready) void this.dtls?.sendRtcp(rawRtcp(...packets)).catch(() => undefined);
  }

  get connectionState(): string {
    return this.pc.connectionState;
  }

  /** A candidate from the viewer (trickle); null or empty: end of candidates. */
  addRemoteCandidate(c: CandidateInit | null): Promise<void> {
    return this.ice?.addCandidate(c) ?? Promise.resolve();
  }

  /** Trickled candidates or an ICE restart (WHEP PATCH): see IceUpdates.update. */
  updateIce(update: IceUpdate): Promise<{ restarted: boolean; answer?: string }> {
    if (!this.ice) return Promise.reject(new Error('not answered yet'));
    return this.ice.update(update);
  }

  get iceRestarts(): number {
    return this.ice?.restarts ?? 0;
  }

  /** The ICE candidate pair in use, once connected. */
  selectedPair(): SelectedPair | undefined {
    return selectedPairOf(this.pc);
  }

  /** Tells the viewer the session is over (RTCP BYE, DTLS close_notify: werift/close-notify.ts), once. */
  announceClose(reason: string): Promise<unknown> {
    this.announced ??= announceClose(this.pc, reason, this.outlets.map((o) => o.ssrc)).catch(() => 0);
    return this.announced;
  }

  async close(reason = 'session ended'): Promise<void> {
    if (this.closed) return;
    await this.announceClose(reason);
    this.closed = true;
    if (this.ice) this.ice.closed = true;
    await this.pc.close().catch(() => undefined);
  }
}

/** The codec werift answers with: exactly the one chosen, with NACK, PLI and FIR feedback for video (transport-cc is added to the answer). */
function weriftCodec(c: ChosenCodec): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: `${c.kind}/${c.name}`,
    clockRate: c.clockRate,
    channels: c.name === 'opus' ? 2 : undefined,
    payloadType: c.payloadType,
    parameters: formatFmtp(c.fmtp) || undefined,
    rtcpFeedback: c.kind === 'video' ? [useNACK(), usePLI(), useFIR()] : [],
  });
}

/**
 * The answer as the viewer gets it: transport-cc feedback asked for where its extension was
 * negotiated (the viewer's congestion feedback is how a viewer that cannot keep up is
 * seen), and each left-out section's reason as its `i=` line.
 */
export function shapeViewerAnswer(answer: string, ignored: IgnoredMedia[]): string {
  const sdp = sdpTransform.parse(answer);
  for (const r of ignored) {
    const m = sdp.media[r.index];
    if (m && m.port === 0) m.description = r.reason.replace(/[\r\n]+/g, ' ');
  }
  for (const m of sdp.media) {
    if ((m.type !== 'audio' && m.type !== 'video') || m.port === 0 || !m.ext?.some((e) => e.uri === TRANSPORT_CC_URI)) continue;
    m.rtcpFb ??= [];
    for (const r of m.rtp ?? []) if (!m.rtcpFb.some((f) => String(f.payload) === String(r.payload) && f.type === 'transport-cc')) m.rtcpFb.push({ payload: r.payload, type: 'transport-cc' });
  }
  return sdpTransform.write(sdp);
}
