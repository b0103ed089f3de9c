import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, useNACK, usePLI, useTransportWideCC, useTWCC } from 'werift';
import { onCleanup, track as trackProcess } from './cleanup.js';
import { directSink } from './direct-sender.js';
import { AUDIO_PT, encoderArgs, VIDEO_PT, type EncodeOptions, type ReplaySink } from './media.js';
import { keepToConfiguredStun } from '../src/werift/stun-default.js';

// A werift WHIP publisher for the bench, configured like test/helpers/werift-publisher.ts
// (ICE on 127.0.0.1 only, H.264 42e01f packetization-mode=1 + Opus), whose media comes
// from outside: a replayed clip (load test) or a live ffmpeg encoder (start-up test).
// Like a browser, it numbers its packets transport-wide and asks for transport-cc
// feedback, so the gateway's cost includes generating it (werift ignores the feedback:
// the replayed bitrate does not change).

export interface BenchPublisher {
  name: string;
  pc: RTCPeerConnection;
  video: MediaStreamTrack;
  audio: MediaStreamTrack;
  status: number;
  location?: string;
  errorText?: string;
  /** performance.now() when the POST went out / the 201 came back / the peer connected. */
  postedAt: number;
  answeredAt: number;
  connectedAt?: number;
  /** Resolves with performance.now() at 'connected'; rejects after `connectTimeoutMs` or on failure. */
  connected: Promise<number>;
  plis: number;
  /**
   * After 'connected': a sink that sends replayed packets straight through the SRTP
   * context (direct-sender.ts), at a fraction of writeRtp()'s cost.
   */
  direct: () => ReplaySink;
  /** Connection and ICE state changes, ms after the 201 (negative: before). */
  states: string[];
  close: () => Promise<void>;
}

/** How an offer is answered: WHIP by default; the Janus anchor (janus.ts) brings its own. */
export type Signaller = (offer: string, name: string) => Promise<{ status: number; body: string; location?: string; close?: () => Promise<void> }>;

/** POST the offer to the gateway's WHIP endpoint; DELETE the session at the end. */
export function whipSignaller(baseUrl: string): Signaller {
  return async (offer, name) => {
    const res = await fetch(`${baseUrl}/whip/${encodeURIComponent(name)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: offer,
      signal: AbortSignal.timeout(20_000),
    });
    const location = res.headers.get('location') ?? undefined;
    return {
      status: res.status,
      body: await res.text(),
      location,
      close: async () => {
        if (location) await fetch(new URL(location, baseUrl), { method: 'DELETE', signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
      },
    };
  };
}

export interface PublishOptions {
  connectTimeoutMs?: number;
  signal?: Signaller;
  /** The one local address ICE uses (default 127.0.0.1). */
  iceAddress?: string;
}

export async function publish(baseUrl: string, name: string, { connectTimeoutMs = 15_000, signal = whipSignaller(baseUrl), iceAddress = '127.0.0.1' }: PublishOptions = {}): Promise<BenchPublisher> {
  let endSession: (() => Promise<void>) | undefined;
  const pc = new RTCPeerConnection({
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: [iceAddress],
    iceInterfaceAddresses: { udp4: iceAddress },
    iceServers: [],
    headerExtensions: { video: [useTransportWideCC()], audio: [useTransportWideCC()] },
    codecs: {
      video: [
        new RTCRtpCodecParameters({
          mimeType: 'video/H264',
          clockRate: 90000,
          payloadType: VIDEO_PT,
          rtcpFeedback: [useNACK(), usePLI(), useTWCC()],
          parameters: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
        }),
      ],
      audio: [
        new RTCRtpCodecParameters({
          mimeType: 'audio/opus',
          clockRate: 48000,
          channels: 2,
          payloadType: AUDIO_PT,
          rtcpFeedback: [useTWCC()],
          parameters: 'minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1',
        }),
      ],
    },
  });
  let closed = false;
  const video = new MediaStreamTrack({ kind: 'video' });
  const audio = new MediaStreamTrack({ kind: 'audio' });
  const vt = pc.addTransceiver(video, { direction: 'sendonly' });
  const at = pc.addTransceiver(audio, { direction: 'sendonly' });
  const pub = {
    name,
    pc,
    video,
    audio,
    status: 0,
    postedAt: 0,
    answeredAt: 0,
    plis: 0,
    states: [] as string[],
    direct: () => directSink({ video: vt.sender, audio: at.sender }),
  } as BenchPublisher;
  const since = () => Math.round(performance.now() - (pub.answeredAt || performance.now()));
  pc.connectionStateChange.subscribe((s) => pub.states.length < 50 && pub.states.push(`${since()}ms pc:${s}`));
  pc.iceConnectionStateChange.subscribe((s) => pub.states.length < 50 && pub.states.push(`${since()}ms ice:${s}`));
  vt.sender.onRtcp.subscribe((rtcp) => {
    if (rtcp.type === 206) pub.plis++;
  });
  pub.connected = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not connected after ${connectTimeoutMs} ms`)), connectTimeoutMs);
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') {
        clearTimeout(timer);
        pub.connectedAt ??= performance.now();
        resolve(pub.connectedAt);
      } else if (s === 'failed' || s === 'closed') {
        clearTimeout(timer);
        reject(new Error(`${name}: connection ${s}`));
      }
    });
  });
  pub.connected.catch(() => undefined);
  const removeCleanup = onCleanup(() => pub.close());
  pub.close = async () => {
    if (closed) return;
    closed = true;
    removeCleanup();
    await endSession?.();
    await Promise.race([pc.close().catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
  };

  try {
    keepToConfiguredStun(pc, []); // no stun.l.google.com from the bench
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise<void>((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      const timer = setTimeout(resolve, 5000);
      pc.iceGatheringStateChange.subscribe((s) => {
        if (s === 'complete') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    pub.postedAt = performance.now();
    const res = await signal(pc.localDescription!.sdp, name);
    pub.answeredAt = performance.now();
    pub.status = res.status;
    endSession = res.close;
    if (res.status !== 201) {
      pub.errorText = res.body;
      await pub.close();
      return pub;
    }
    pub.location = res.location;
    await pc.setRemoteDescription({ type: 'answer', sdp: res.body });
    return pub;
  } catch (e) {
    await pub.close();
    throw e;
  }
}

/**
 * A live encoder for one publisher (start-up test): ffmpeg, in real time, to loopback UDP,
 * written into the tracks. Resolves once listening; ffmpeg starts when `start()` is called.
 */
export async function liveEncoder(pub: BenchPublisher, o: EncodeOptions): Promise<{ start: () => void; firstPacketAt: () => number | undefined; stop: () => void }> {
  let first: number | undefined;
  const sockets: dgram.Socket[] = [];
  const bind = async (t: MediaStreamTrack): Promise<number> => {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    s.on('message', (m) => {
      first ??= performance.now();
      t.writeRtp(m);
    });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    sockets.push(s);
    return (s.address() as AddressInfo).port;
  };
  const videoPort = await bind(pub.video);
  const audioPort = await bind(pub.audio);
  let proc: ChildProcess | undefined;
  return {
    start: () => {
      proc = spawn('ffmpeg', encoderArgs({ ...o, readrate: 1, videoPort, audioPort, preset: 'ultrafast' }), { stdio: ['ignore', 'ignore', 'ignore'] });
      trackProcess(proc);
    },
    firstPacketAt: () => first,
    stop: () => {
      proc?.kill('SIGKILL');
      for (const s of sockets) s.close();
    },
  };
}
