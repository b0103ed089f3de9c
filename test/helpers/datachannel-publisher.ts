import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { WhipAnswered } from './whip-answered.js';
import { Audio, PeerConnection, RtcpNackResponder, RtcpSrReporter, RtpPacketizationConfig, Video, type Track } from 'node-datachannel';

// A WHIP publisher shaped like OBS Studio's (obs-webrtc plugin, libdatachannel), through
// node-datachannel (the same libdatachannel): audio first (mid "0", Opus pt 111), then
// video (mid "1", H.264 pt 96 with libdatachannel's default
// profile-level-id=42e01f;packetization-mode=1), both sendonly on one bundled transport,
// no header extensions, an SSRC each (audio = base, video = base + 1), an RTCP sender
// report and NACK responder per track as OBS chains them.
//
// candidates 'none' is OBS 30.1+: it POSTs the offer at once, without candidates (its
// libdatachannel gathers only after the answer, so the gateway learns the publisher's
// address from its connectivity checks). node-datachannel cannot start gathering by hand
// (no gatherLocalCandidates), so here gathering runs as usual and the offer is the
// description as first made, before any candidate. candidates 'in-offer' is older OBS:
// it waits for gathering to complete and sends its candidates in the offer.
//
// Media: ffmpeg encodes a test pattern (libx264 constrained baseline, zerolatency, fixed
// GOP of 2 s, SPS/PPS in every keyframe) and a tone (Opus) to RTP on loopback; each packet
// is sent with the track's sendMessageBinary under the track's SSRC and payload type.
// Like OBS, the encoder starts when the WHIP answer arrives (OBS begins data capture
// then), packets before the track is open are dropped, and keyframe requests (PLI) are
// ignored: the next keyframe comes with the GOP.

export interface DataChannelPublisherOptions {
  whipUrl: string;
  candidates: 'in-offer' | 'none';
  token?: string;
  width?: number;
  height?: number;
  fps?: number;
  videoKbps?: number;
  /** Local address for ICE (default 127.0.0.1). */
  iceAddress?: string;
}

export interface DataChannelPublisher extends WhipAnswered {
  pc: PeerConnection;
  ffmpeg?: ChildProcess;
  /** The end of the encoder's stderr. */
  ffmpegErrors: string;
  /** Peer connection states as libdatachannel reported them, with performance.now(). */
  states: { state: string; at: number }[];
  state: () => string;
  /** Called on every peer connection state change. */
  onStateChange: (cb: (state: string) => void) => void;
  /** RTP packets sent per track. */
  sent: { audio: number; video: number };
  /** Encoded packets dropped because the track was not open yet (OBS drops them too). */
  dropped: { audio: number; video: number };
  /** Keyframe requests (RTCP PLI) the gateway sent, as the video track received them, with performance.now(). */
  plis: number[];
  connected: () => Promise<void>;
  stop: (opts?: { delete?: boolean }) => Promise<number | undefined>;
}

const AUDIO_PT = 111;
const VIDEO_PT = 96;

const bearer = (token: string | undefined): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {});

async function udpReceiver(onPacket: (buf: Buffer) => void): Promise<{ port: number; close: () => void }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', onPacket);
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  socket.setRecvBufferSize?.(4 * 1024 * 1024);
  return { port: (socket.address() as AddressInfo).port, close: () => socket.close() };
}

/** OBS makes its cname and media stream id of 16 random letters and digits. */
const randomName = (): string => randomBytes(12).toString('base64').replace(/[^A-Za-z0-9]/g, 'x').slice(0, 16);

export async function startDataChannelPublisher(opts: DataChannelPublisherOptions): Promise<DataChannelPublisher> {
  const { width = 1280, height = 720, fps = 30, videoKbps = 2500 } = opts;
  const iceAddress = opts.iceAddress ?? '127.0.0.1';
  const pc = new PeerConnection('obs-like', {
    iceServers: [],
    // Host candidates on this address only; no UDP mux (one socket per peer, as OBS).
    bindAddress: iceAddress,
    enableIceUdpMux: false,
  });
  const states: { state: string; at: number }[] = [];
  const stateListeners = new Set<(s: string) => void>();
  pc.onStateChange((s) => {
    states.push({ state: s, at: performance.now() });
    for (const l of stateListeners) l(s);
  });
  let firstDescription: string | undefined;
  pc.onLocalDescription((sdp) => {
    firstDescription ??= sdp;
  });

  const cname = randomName();
  const msid = randomName();
  const baseSsrc = randomInt(1, 0x7fffffff);
  const tracks: { kind: 'audio' | 'video'; track: Track; ssrc: number; pt: number }[] = [];
  {
    const audio = new Audio('0', 'SendOnly');
    audio.addOpusCodec(AUDIO_PT);
    audio.addSSRC(baseSsrc, cname, msid, `${msid}-audio`);
    const track = pc.addTrack(audio);
    const sr = new RtcpSrReporter(new RtpPacketizationConfig(baseSsrc, cname, AUDIO_PT, 48000));
    sr.addToChain(new RtcpNackResponder());
    track.setMediaHandler(sr);
    tracks.push({ kind: 'audio', track, ssrc: baseSsrc, pt: AUDIO_PT });
  }
  {
    const video = new Video('1', 'SendOnly');
    video.addH264Codec(VIDEO_PT);
    video.addSSRC(baseSsrc + 1, cname, msid, `${msid}-video`);
    const track = pc.addTrack(video);
    const sr = new RtcpSrReporter(new RtpPacketizationConfig(baseSsrc + 1, cname, VIDEO_PT, 90000));
    sr.addToChain(new RtcpNackResponder());
    track.setMediaHandler(sr);
    tracks.push({ kind: 'video', track, ssrc: baseSsrc + 1, pt: VIDEO_PT });
  }
  const sent = { audio: 0, video: 0 };
  const dropped = { audio: 0, video: 0 };
  const plis: number[] = [];
  // RTCP reaching the video track, after libdatachannel's handlers (decrypted, compound):
  // count the PLIs (PT 206, FMT 1). Like OBS, nothing acts on them. libdatachannel hands
  // each one to onMessage twice, a few ms apart (measured; the gateway sends one, as a
  // werift publisher counts): a repeat within 50 ms is not counted (the gateway never
  // sends two within 150 ms).
  let lastPli = -Infinity;
  tracks[1].track.onMessage((msg) => {
    for (let at = 0; at + 4 <= msg.length; at += 4 * (msg.readUInt16BE(at + 2) + 1)) {
      if (msg[at] >> 6 !== 2) break;
      if (msg[at + 1] !== 206 || (msg[at] & 0x1f) !== 1) continue;
      const now = performance.now();
      if (now - lastPli > 50) plis.push(now);
      lastPli = now;
    }
  });
  const closers: (() => void)[] = [];
  const rx: Record<'audio' | 'video', number> = { audio: 0, video: 0 };
  for (const t of tracks) {
    const r = await udpReceiver((buf) => {
      if (buf.length < 12) return;
      if (!t.track.isOpen()) {
        dropped[t.kind]++;
        return;
      }
      const pt = buf[1] & 0x7f;
      if (pt >= 72 && pt <= 79) return; // RTCP (ffmpeg sends its own SRs to port + 1, not here, but be sure)
      buf[1] = (buf[1] & 0x80) | t.pt;
      buf.writeUInt32BE(t.ssrc >>> 0, 8);
      if (t.track.sendMessageBinary(buf)) sent[t.kind]++;
    });
    rx[t.kind] = r.port;
    closers.push(r.close);
  }

  pc.setLocalDescription();
  let offer: string;
  if (opts.candidates === 'in-offer') {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('libdatachannel ICE gathering did not complete in 5 s')), 5000);
      const check = (s: string) => s === 'complete' && (clearTimeout(timer), resolve());
      pc.onGatheringStateChange(check);
      check(pc.gatheringState());
    });
    offer = pc.localDescription()!.sdp;
  } else {
    offer = firstDescription ?? pc.localDescription()!.sdp;
    // The description as first made carries no candidate; strip any all the same (OBS 30.1+
    // sends none). Here libjuice has its host socket already, so the description names its
    // port and address as the default candidate; OBS's, made before any gathering, has
    // libdatachannel's placeholders: port 9 and c=IN IP4 0.0.0.0.
    offer = offer
      .replace(/^a=(candidate:|end-of-candidates).*\r?\n/gm, '')
      .replace(/^m=(audio|video) \d+ /gm, 'm=$1 9 ')
      .replace(/^c=IN IP4 .*$/gm, 'c=IN IP4 0.0.0.0');
  }

  const res = await fetch(opts.whipUrl, { method: 'POST', headers: { 'Content-Type': 'application/sdp', ...bearer(opts.token) }, body: offer });
  const body = await res.text();
  const answeredAt = performance.now();
  const loc = res.headers.get('location');
  let stopped = false;
  const connectedPromise = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`libdatachannel did not connect in 10 s (states: ${states.map((s) => s.state).join(',')})`)), 10_000);
    const check = (s: string) => {
      if (s === 'connected') {
        clearTimeout(timer);
        resolve();
      } else if (s === 'failed' || s === 'closed') {
        clearTimeout(timer);
        reject(new Error(`libdatachannel connection ${s}`));
      }
    };
    stateListeners.add(check);
    check(pc.state());
  });
  connectedPromise.catch(() => undefined);
  const publisher: DataChannelPublisher = {
    status: res.status,
    offer,
    answer: res.status === 201 ? body : '',
    errorText: res.status === 201 ? undefined : body,
    location: loc ? new URL(loc, opts.whipUrl).href : undefined,
    answeredAt,
    pc,
    states,
    state: () => (stopped ? 'closed' : pc.state()),
    onStateChange: (cb) => stateListeners.add(cb),
    sent,
    dropped,
    plis,
    ffmpegErrors: '',
    connected: () => connectedPromise,
    stop: async ({ delete: del = true } = {}) => {
      if (stopped) return undefined;
      stopped = true;
      publisher.ffmpeg?.kill('SIGKILL');
      let status: number | undefined;
      if (del && publisher.location) {
        status = await fetch(publisher.location, { method: 'DELETE', headers: bearer(opts.token) }).then((r) => r.status, () => undefined);
      }
      closers.forEach((c) => c());
      stateListeners.clear();
      pc.close();
      return status;
    },
  };
  if (res.status !== 201) {
    await publisher.stop({ delete: false });
    return publisher;
  }
  pc.setRemoteDescription(body, 'answer');

  const gop = fps * 2;
  // -t: an encoder orphaned by a killed test run stops by itself.
  const ffArgs = [
    '-hide_banner', '-loglevel', 'error', '-re', '-t', '900',
    '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-map', '0:v', '-c:v', 'libx264', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p',
    '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0', '-bf', '0',
    '-b:v', `${videoKbps}k`, '-maxrate', `${videoKbps}k`, '-bufsize', `${videoKbps * 2}k`,
    '-x264-params', 'repeat-headers=1',
    '-payload_type', String(VIDEO_PT), '-f', 'rtp', `rtp://127.0.0.1:${rx.video}?pkt_size=1200`,
    '-map', '1:a', '-c:a', 'libopus', '-ac', '2', '-b:a', '160k', '-payload_type', String(AUDIO_PT),
    '-f', 'rtp', `rtp://127.0.0.1:${rx.audio}?pkt_size=1200`,
  ];
  publisher.ffmpeg = spawn('ffmpeg', ffArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  publisher.ffmpeg.stderr!.on('data', (d: Buffer) => {
    publisher.ffmpegErrors = (publisher.ffmpegErrors + d.toString()).slice(-2000);
  });
  return publisher;
}
