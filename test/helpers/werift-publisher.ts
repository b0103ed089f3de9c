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
import { keepToConfiguredStun } from '../../src/webrtc/ice-options.js';

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
  /** Sent as `Authorization: Bearer` with the WHIP POST and DELETE. */
  token?: string;
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
  connected: () => Promise<void>;
  stop: (opts?: { delete?: boolean }) => Promise<void>;
}

const SWITCHED_SSRC = 0x5eed5eed;

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
  const res = await fetch(opts.whipUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...bearer(opts.token) },
    body: pc.localDescription!.sdp,
  });
  const body = await res.text();
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
  const publisher: Publisher = {
    status: res.status,
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
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
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
