import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpPacket,
  RtcpTransportLayerFeedback,
  TransportWideCC,
  useNACK,
  usePLI,
  useTransportWideCC,
  useTWCC,
} from 'werift';
import { parseIceFragment, withIce } from '../../src/sdp/ice-fragment.js';
import { keepToConfiguredStun } from '../../src/werift/stun-default.js';

// A real WebRTC publisher for tests and benchmarks: ffmpeg encodes a test pattern (H.264
// Constrained Baseline, SPS/PPS before every IDR as browsers do) and a tone (Opus) to RTP
// on loopback, and a werift peer connection sends them to the gateway over WHIP.
// Nothing is committed: the media is made live at test time.

export interface PublisherOptions {
  whipUrl: string;
  video?: boolean;
  audio?: boolean;
  width?: number;
  height?: number;
  fps?: number;
  videoKbps?: number;
  stereo?: boolean;
  /** Audio codec to offer: opus (default) or PCMU. */
  audioCodec?: 'opus' | 'PCMU';
  /** Keyframe interval in frames (default: 2 s worth). */
  gop?: number;
  /** Local address for ICE (default 127.0.0.1) and STUN/TURN servers (default none). */
  iceAddress?: string;
  iceServers?: { urls: string; username?: string; credential?: string }[];
  /** Only relay candidates (TURN). */
  relayOnly?: boolean;
  /** Number packets transport-wide and offer transport-cc, as browsers do (feedback is collected). */
  transportCc?: boolean;
  /**
   * This long after connecting, video goes out under another SSRC, without a new offer
   * (as an encoder restart in some WHIP clients does).
   */
  switchVideoSsrcAfterMs?: number;
  /** Sent as `Authorization: Bearer` with the WHIP POST, PATCH and DELETE. */
  token?: string;
  /**
   * 'patch': the offer goes out without candidates and they follow after the 201 in a
   * WHIP PATCH (trickle ICE, RFC 9725 §4.3.1), as a client that gathers slowly sends them.
   */
  trickle?: 'patch';
  /**
   * Take no candidate from the answer: this publisher then checks nothing itself and is
   * reached only by the gateway's checks, to the candidates it trickled (so a test can
   * tell that the trickled ones were used).
   */
  ignoreAnswerCandidates?: boolean;
  /**
   * Sync marks instead of the test pattern and tone: for the first 100 ms of every second
   * the picture is white (else black) and a 1 kHz beep sounds (else silence).
   */
  syncMarks?: boolean;
}

export interface Publisher {
  status: number;
  answer: string;
  location?: string;
  errorText?: string;
  pc: RTCPeerConnection;
  ffmpeg?: ChildProcess;
  /** PLIs the gateway sent us. */
  plis: () => number;
  /** Transport-wide CC feedback the gateway sent us (with transportCc), as werift parsed it. */
  twcc: TransportWideCC[];
  /** The last transport-wide sequence number we sent. */
  lastTransportSequence: () => number;
  /**
   * Transport-wide CC packets as they arrived, before decryption, by sender SSRC (an SRTCP
   * packet's first 8 bytes are in the clear): one SSRC per feedback generator, counting
   * packets werift's own parser might drop.
   */
  twccSenders: Map<number, number>;
  /** The offer as POSTed. */
  offer: string;
  /** The WHIP session's ETag, as the last response gave it. */
  etag: () => string | undefined;
  /** Status of the trickle PATCH (option trickle 'patch'), once sent. */
  tricklePatch: () => Promise<number>;
  /**
   * An ICE restart over WHIP PATCH (RFC 9725 §4.3.2), as after a network change: with
   * `newSocket` the old ICE socket is closed first and a new one gathered on another port,
   * `lostForMs` after that (the time a client takes to notice).
   */
  restartIce: (opts?: { newSocket?: boolean; lostForMs?: number }) => Promise<IceRestartResult>;
  connected: () => Promise<void>;
  stop: (opts?: { delete?: boolean }) => Promise<void>;
}

export interface IceRestartResult {
  status: number;
  /** The PATCH body sent and the response body. */
  fragment: string;
  answer: string;
  etag?: string;
  /** performance.now() when the old socket was closed, the PATCH sent, and the answer applied. */
  lostAt: number;
  patchedAt: number;
  appliedAt: number;
}

const SWITCHED_SSRC = 0x5eed5eed;

/**
 * werift as the offering (controlling) side of an ICE restart never starts its checks:
 * RTCPeerConnection.connect() returns early while DTLS is connected, so no pair is
 * nominated and it sends nothing (test/integration/werift-patches.test.ts shows it). A
 * browser checks by itself; this test publisher starts werift's checks after applying
 * the restart's answer.
 */
export async function resumeIceChecks(pc: RTCPeerConnection): Promise<void> {
  await Promise.allSettled(
    pc.dtlsTransports
      .filter((d) => d.state === 'connected')
      .map((d) => d.iceTransport)
      .filter((t) => t.state !== 'closed' && !t.connection.nominated && !(t as unknown as { waitStart?: unknown }).waitStart)
      .map((t) => t.start()),
  );
}

async function udpReceiver(onPacket: (buf: Buffer) => void): Promise<{ port: number; close: () => void }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', onPacket);
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  socket.setRecvBufferSize?.(4 * 1024 * 1024);
  return { port: (socket.address() as AddressInfo).port, close: () => socket.close() };
}

const bearer = (token: string | undefined): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {});

export async function startWeriftPublisher(opts: PublisherOptions): Promise<Publisher> {
  const { video = true, audio = true, width = 640, height = 360, fps = 30, videoKbps = 1000, stereo = true, audioCodec = 'opus' } = opts;
  const gop = opts.gop ?? fps * 2;
  const iceAddress = opts.iceAddress ?? '127.0.0.1';
  const feedback = opts.transportCc ? [useTWCC()] : [];
  const pc = new RTCPeerConnection({
    headerExtensions: opts.transportCc ? { video: [useTransportWideCC()], audio: [useTransportWideCC()] } : undefined,
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: [iceAddress],
    iceInterfaceAddresses: { udp4: iceAddress },
    iceServers: opts.iceServers ?? [],
    iceTransportPolicy: opts.relayOnly ? 'relay' : 'all',
    codecs: {
      video: [
        new RTCRtpCodecParameters({
          mimeType: 'video/H264',
          clockRate: 90000,
          payloadType: 102,
          rtcpFeedback: [useNACK(), usePLI(), ...feedback],
          parameters: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
        }),
      ],
      audio:
        audioCodec === 'opus'
          ? [
              new RTCRtpCodecParameters({
                mimeType: 'audio/opus',
                clockRate: 48000,
                channels: 2,
                payloadType: 111,
                rtcpFeedback: feedback,
                parameters: stereo ? 'minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1' : 'minptime=10;useinbandfec=1',
              }),
            ]
          : [new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 })],
    },
  });
  let plis = 0;
  let connectedAt: number | undefined;
  const twcc: TransportWideCC[] = [];
  const twccSenders = new Map<number, number>();
  let stopped = false;
  const closers: (() => void)[] = [];
  // -t: an encoder orphaned by a killed test run stops by itself.
  const ffArgs: string[] = ['-hide_banner', '-loglevel', 'error', '-re', '-t', '900'];
  let videoRx: { port: number; close: () => void } | undefined;
  let audioRx: { port: number; close: () => void } | undefined;
  if (video) {
    const track = new MediaStreamTrack({ kind: 'video' });
    const t = pc.addTransceiver(track, { direction: 'sendonly' });
    t.sender.onRtcp.subscribe((rtcp) => {
      if (rtcp.type === 206) plis++;
    });
    videoRx = await udpReceiver((buf) => {
      if (opts.switchVideoSsrcAfterMs !== undefined && connectedAt !== undefined && performance.now() - connectedAt > opts.switchVideoSsrcAfterMs) {
        // Straight into the SRTP transport under a new SSRC: werift's sender would put its own.
        const p = RtpPacket.deSerialize(buf);
        p.header.ssrc = SWITCHED_SSRC;
        p.header.extension = false;
        p.header.extensions = [];
        void pc.dtlsTransports[0]?.sendRtp(p.payload, p.header);
        return;
      }
      track.writeRtp(buf);
    });
    closers.push(videoRx.close);
    const marks = `color=c=black:size=${width}x${height}:rate=${fps},drawbox=c=white:t=fill:enable='lt(mod(t,1),0.1)'`;
    ffArgs.push('-f', 'lavfi', '-i', opts.syncMarks ? marks : `testsrc2=size=${width}x${height}:rate=${fps}`);
  }
  if (audio) {
    const track = new MediaStreamTrack({ kind: 'audio' });
    pc.addTransceiver(track, { direction: 'sendonly' });
    audioRx = await udpReceiver((buf) => track.writeRtp(buf));
    closers.push(audioRx.close);
    const rate = audioCodec === 'opus' ? 48000 : 8000;
    const beep = `aevalsrc='if(lt(mod(t,1),0.1),0.5*sin(2*PI*1000*t),0)':s=${rate}`;
    ffArgs.push('-f', 'lavfi', '-i', opts.syncMarks ? beep : `sine=frequency=440:sample_rate=${rate}`);
  }
  let input = 0;
  if (videoRx) {
    ffArgs.push(
      '-map', `${input++}:v`, '-c:v', 'libx264', '-profile:v', 'baseline', '-level', '3.1', '-pix_fmt', 'yuv420p',
      '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', String(gop), '-bf', '0',
      '-b:v', `${videoKbps}k`, '-maxrate', `${videoKbps}k`, '-bufsize', `${videoKbps}k`,
      '-bsf:v', 'dump_extra', '-payload_type', '102', '-f', 'rtp', `rtp://127.0.0.1:${videoRx.port}?pkt_size=1200`,
    );
  }
  if (audioRx) {
    if (audioCodec === 'opus') {
      ffArgs.push('-map', `${input++}:a`, '-c:a', 'libopus', '-ac', stereo ? '2' : '1', '-b:a', '64k', '-payload_type', '111');
    } else {
      ffArgs.push('-map', `${input++}:a`, '-c:a', 'pcm_mulaw', '-ac', '1', '-ar', '8000', '-payload_type', '0');
    }
    ffArgs.push('-f', 'rtp', `rtp://127.0.0.1:${audioRx.port}?pkt_size=1200`);
  }
  keepToConfiguredStun(pc, opts.iceServers ?? []); // no stun.l.google.com from tests
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && resolve());
  });
  const gathered = pc.localDescription!.sdp;
  // Trickling: the offer as first made, without candidates; they follow in a PATCH.
  const offer = opts.trickle === 'patch' ? gathered.replace(/^a=(candidate:|end-of-candidates).*\r?\n/gm, '') : gathered;
  const res = await fetch(opts.whipUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...bearer(opts.token) },
    body: offer,
  });
  const body = await res.text();
  let etag = res.headers.get('etag') ?? undefined;
  const connectedPromise = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('publisher did not connect in 10 s')), 10_000);
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') {
        connectedAt = performance.now();
        clearTimeout(timer);
        resolve();
      }
    });
  });
  connectedPromise.catch(() => undefined);
  const sessionUrl = () => new URL(publisher.location!, opts.whipUrl);
  const patch = async (fragment: string, ifMatch: string | undefined) => {
    const r = await fetch(sessionUrl(), { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', ...(ifMatch ? { 'If-Match': ifMatch } : {}), ...bearer(opts.token) }, body: fragment });
    etag = r.headers.get('etag') ?? etag;
    return { status: r.status, body: await r.text() };
  };
  /** The ICE lines of an SDP's first (bundle tag) section, as a WHIP client PATCHes them (RFC 8840 fragment). */
  const fragmentOf = (sdp: string) => {
    const lines = sdp.split(/\r?\n/);
    const start = lines.findIndex((l) => l.startsWith('m='));
    const end = lines.findIndex((l, i) => i > start && l.startsWith('m='));
    const section = lines.slice(start, end < 0 ? undefined : end);
    const first = (prefix: string) => section.find((l) => l.startsWith(prefix)) ?? lines.find((l) => l.startsWith(prefix));
    return ['a=ice-options:trickle', section[0], first('a=mid:'), first('a=ice-ufrag:'), first('a=ice-pwd:'), ...section.filter((l) => l.startsWith('a=candidate:')), 'a=end-of-candidates', ''].join('\r\n');
  };
  let tricklePatch: Promise<number> | undefined;
  const publisher: Publisher = {
    status: res.status,
    offer,
    etag: () => etag,
    tricklePatch: () => tricklePatch ?? Promise.reject(new Error('no trickle PATCH (option trickle)')),
    restartIce: async ({ newSocket = false, lostForMs = 0 } = {}) => {
      const lostAt = performance.now();
      if (newSocket) {
        // The network changed: the old socket is gone; gathering opens a new one.
        const conn = pc.iceTransports[0].connection as unknown as { protocols: { close?: () => Promise<void> }[] };
        for (const p of conn.protocols) await p.close?.();
        conn.protocols = [];
      }
      await new Promise((r) => setTimeout(r, lostForMs));
      pc.restartIce();
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise<void>((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        const sub = pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && (sub.unSubscribe(), resolve()));
      });
      const fragment = fragmentOf(pc.localDescription!.sdp);
      const patchedAt = performance.now();
      const r = await patch(fragment, '*');
      if (r.status !== 200) return { status: r.status, fragment, answer: r.body, etag, lostAt, patchedAt, appliedAt: performance.now() };
      const update = parseIceFragment(r.body);
      await pc.setRemoteDescription({ type: 'answer', sdp: withIce(publisher.answer, { ...update, ufrag: update.ufrag!, pwd: update.pwd! }) });
      void resumeIceChecks(pc); // werift as the offerer skips its checks after a restart too (see that file)
      return { status: r.status, fragment, answer: r.body, etag, lostAt, patchedAt, appliedAt: performance.now() };
    },
    answer: res.status === 201 ? body : '',
    errorText: res.status === 201 ? undefined : body,
    location: res.headers.get('location') ?? undefined,
    pc,
    plis: () => plis,
    twcc,
    twccSenders,
    lastTransportSequence: () => pc.dtlsTransports[0]?.transportSequenceNumber ?? 0,
    connected: () => connectedPromise,
    stop: async ({ delete: del = true } = {}) => {
      if (stopped) return; // once: a second close of the sockets would throw
      stopped = true;
      publisher.ffmpeg?.kill('SIGKILL');
      if (del && publisher.location) await fetch(new URL(publisher.location, opts.whipUrl), { method: 'DELETE', headers: bearer(opts.token) }).catch(() => undefined);
      closers.forEach((c) => c());
      await pc.close();
    },
  };
  if (res.status !== 201) {
    // Closed now, so a later stop() must not close the sockets again (it would throw and
    // hide the test's own failure, the status and errorText).
    await publisher.stop({ delete: false });
    return publisher;
  }
  const answer = opts.ignoreAnswerCandidates ? body.replace(/^a=(candidate:|end-of-candidates).*\r?\n/gm, '') : body;
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  if (opts.trickle === 'patch') tricklePatch = patch(fragmentOf(gathered), etag).then((r) => r.status);
  for (const dtls of new Set(pc.dtlsTransports)) {
    dtls.iceTransport.connection.onData.subscribe((data: Buffer) => {
      // RTCP (not STUN or DTLS): version 2, PT 205 (transport feedback), FMT 15.
      if (data.length >= 8 && data[0] >> 6 === 2 && data[1] === 205 && (data[0] & 0x1f) === 15) {
        const ssrc = data.readUInt32BE(4);
        twccSenders.set(ssrc, (twccSenders.get(ssrc) ?? 0) + 1);
      }
    });
    dtls.onRtcp.subscribe((rtcp) => {
      if (rtcp instanceof RtcpTransportLayerFeedback && rtcp.feedback instanceof TransportWideCC) twcc.push(rtcp.feedback);
    });
  }
  // Encode from the moment media can flow, so the first packet is a keyframe, as with a browser.
  void connectedPromise.then(() => {
    if (stopped) return;
    publisher.ffmpeg = spawn('ffmpeg', ffArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  }, () => undefined);
  return publisher;
}
