import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { track } from './cleanup.js';

// Media for the load test. 30 x264 encoders do not fit on 2 cores, so a clip is encoded
// once (720p30 H.264 Constrained Baseline ~2.5 Mbit/s with SPS/PPS before every IDR, as
// browsers send it, plus Opus), captured as RTP packets in memory, and replayed in a loop,
// paced by the RTP timestamps, into every publisher. Sequence numbers keep counting and
// timestamps advance by the clip length each round, so every loop looks like one
// continuous stream to the gateway.

export const VIDEO_PT = 102;
export const AUDIO_PT = 111;
const VIDEO_CLOCK = 90_000;
const AUDIO_CLOCK = 48_000;

export interface ClipPacket {
  kind: 'video' | 'audio';
  /** When it is due, in seconds from the start of the clip. */
  at: number;
  /** RTP timestamp relative to the first packet of its kind. */
  tsRel: number;
  raw: Buffer;
}

export interface Clip {
  /** Video and audio packets in send order. */
  packets: ClipPacket[];
  seconds: number;
  videoLoopTicks: number;
  audioLoopTicks: number;
  videoPackets: number;
  audioPackets: number;
  videoKbps: number;
  audioKbps: number;
  keyframes: number;
  /** Packets per second, both kinds. */
  packetRate: number;
  description: string;
}

export interface EncodeOptions {
  width: number;
  height: number;
  fps: number;
  videoKbps: number;
  seconds: number;
  /** Keyframe interval in frames. */
  gop: number;
}

async function receiver(onPacket: (buf: Buffer) => void): Promise<{ port: number; close: () => void }> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  socket.on('message', (m) => onPacket(Buffer.from(m)));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return { port: (socket.address() as AddressInfo).port, close: () => socket.close() };
}

/** ffmpeg encoder arguments for a lavfi test pattern + tone to two RTP ports on loopback. */
export function encoderArgs(o: EncodeOptions & { readrate: number; videoPort: number; audioPort: number; preset: string }): string[] {
  const args = ['-hide_banner', '-loglevel', 'error', '-nostdin'];
  // -readrate 1 is -re; a higher rate encodes faster than real time, but paced.
  const input = [...(o.readrate > 0 ? ['-readrate', String(o.readrate)] : []), ...(o.seconds > 0 ? ['-t', String(o.seconds)] : [])];
  args.push(...input, '-f', 'lavfi', '-i', `testsrc2=size=${o.width}x${o.height}:rate=${o.fps}`);
  args.push(...input, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000');
  args.push(
    '-map', '0:v', '-c:v', 'libx264', '-profile:v', 'baseline', '-level', '3.1', '-pix_fmt', 'yuv420p',
    '-preset', o.preset, '-tune', 'zerolatency', '-g', String(o.gop), '-keyint_min', String(o.gop), '-sc_threshold', '0', '-bf', '0',
    '-b:v', `${o.videoKbps}k`, '-maxrate', `${o.videoKbps}k`, '-bufsize', `${o.videoKbps}k`,
    '-bsf:v', 'dump_extra', '-payload_type', String(VIDEO_PT), '-ssrc', '1111', '-f', 'rtp', `rtp://127.0.0.1:${o.videoPort}?pkt_size=1200`,
    '-map', '1:a', '-c:a', 'libopus', '-ac', '2', '-b:a', '64k', '-payload_type', String(AUDIO_PT), '-ssrc', '2222', '-f', 'rtp', `rtp://127.0.0.1:${o.audioPort}?pkt_size=1200`,
  );
  return args;
}

/** Encodes the clip once (faster than real time) and keeps its RTP packets. */
export async function encodeClip(o: EncodeOptions): Promise<Clip> {
  const video: Buffer[] = [];
  const audio: Buffer[] = [];
  const vrx = await receiver((b) => video.push(b));
  const arx = await receiver((b) => audio.push(b));
  try {
    // Faster than real time, but not a flood: -readrate keeps the UDP bursts small enough
    // for the socket buffers (nothing may be lost, the clip is replayed for minutes).
    const args = encoderArgs({ ...o, readrate: 4, videoPort: vrx.port, audioPort: arx.port, preset: 'veryfast' });
    const proc = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    track(proc);
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => proc.kill('SIGKILL'), 120_000);
      proc.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    if (code !== 0) throw new Error(`clip encoder failed (exit ${code}): ${stderr.trim().slice(0, 1000)}`);
    await new Promise((r) => setTimeout(r, 200)); // the last datagrams
  } finally {
    vrx.close();
    arx.close();
  }
  return buildClip(video, audio, o);
}

function seqOf(b: Buffer): number {
  return b.readUInt16BE(2);
}
function tsOf(b: Buffer): number {
  return b.readUInt32BE(4);
}

/** Checks the capture (no loss, starts with a keyframe) and lays it out for replay. */
export function buildClip(video: Buffer[], audio: Buffer[], o: EncodeOptions): Clip {
  if (video.length < 100 || audio.length < 50) throw new Error(`clip capture too short: ${video.length} video, ${audio.length} audio packets`);
  for (const [kind, list] of [['video', video], ['audio', audio]] as const) {
    for (let i = 1; i < list.length; i++) {
      if (((seqOf(list[i]) - seqOf(list[i - 1])) & 0xffff) !== 1) throw new Error(`clip capture lost or reordered ${kind} packets near #${i}`);
    }
  }
  if (!startsKeyframe(video[0])) throw new Error('clip does not start with SPS/IDR');
  const v0 = tsOf(video[0]);
  const a0 = tsOf(audio[0]);
  const frameTicks = Math.round(VIDEO_CLOCK / o.fps);
  const frames = new Set(video.map((b) => (tsOf(b) - v0) >>> 0)).size;
  const videoLoopTicks = frames * frameTicks;
  const seconds = videoLoopTicks / VIDEO_CLOCK;
  const audioLoopTicks = Math.round(seconds * AUDIO_CLOCK);
  const packets: ClipPacket[] = [];
  let keyframes = 0;
  for (const raw of video) {
    const tsRel = (tsOf(raw) - v0) >>> 0;
    if (startsKeyframe(raw) && (packets.length === 0 || packets[packets.length - 1].tsRel !== tsRel)) keyframes++;
    packets.push({ kind: 'video', at: tsRel / VIDEO_CLOCK, tsRel, raw });
  }
  for (const raw of audio) {
    const tsRel = (tsOf(raw) - a0) >>> 0;
    if (tsRel >= audioLoopTicks) continue; // audio slightly longer than the video: cut at the loop length
    packets.push({ kind: 'audio', at: tsRel / AUDIO_CLOCK, tsRel, raw });
  }
  packets.sort((a, b) => a.at - b.at || (a.kind === b.kind ? 0 : a.kind === 'video' ? -1 : 1));
  const bytes = (k: 'video' | 'audio') => packets.filter((p) => p.kind === k).reduce((s, p) => s + p.raw.length, 0);
  const videoPackets = packets.filter((p) => p.kind === 'video').length;
  const audioPackets = packets.length - videoPackets;
  return {
    packets,
    seconds,
    videoLoopTicks,
    audioLoopTicks,
    videoPackets,
    audioPackets,
    videoKbps: (bytes('video') * 8) / seconds / 1000,
    audioKbps: (bytes('audio') * 8) / seconds / 1000,
    keyframes,
    packetRate: packets.length / seconds,
    description: `${o.width}x${o.height}@${o.fps} H.264 CB (gop ${o.gop}) + Opus 48k stereo, ${seconds.toFixed(1)} s loop`,
  };
}

/** RTP packet (with 12+ byte header) whose payload starts an H.264 keyframe (SPS or IDR start). */
function startsKeyframe(raw: Buffer): boolean {
  const cc = raw[0] & 0x0f;
  let off = 12 + cc * 4;
  if (raw[0] & 0x10) off += 4 + raw.readUInt16BE(off + 2) * 4;
  const nal = raw[off] & 0x1f;
  if (nal === 7 || nal === 5) return true;
  if (nal === 28) return (raw[off + 1] & 0x80) !== 0 && (raw[off + 1] & 0x1f) === 5;
  if (nal === 24) return (raw[off + 3] & 0x1f) === 7 || (raw[off + 3] & 0x1f) === 5;
  return false;
}

export interface ReplaySink {
  video: (buf: Buffer) => void;
  audio: (buf: Buffer) => void;
}

/** One publisher's position in the looped clip. */
export class Replay {
  private index = 0;
  private loop = 0;
  private startAt = 0;
  private running = false;
  private seq = { video: Math.floor(Math.random() * 0x7fff), audio: Math.floor(Math.random() * 0x7fff) };
  private readonly tsBase = { video: Math.floor(Math.random() * 0x7fffffff), audio: Math.floor(Math.random() * 0x7fffffff) };
  sent = 0;
  sentBytes = 0;
  /** Worst lateness of a packet (ms) since the last reset: how far the sender fell behind. */
  maxLagMs = 0;

  constructor(
    private readonly clip: Clip,
    private readonly sink: ReplaySink,
  ) {}

  /** Starts at the beginning of the clip (a keyframe). */
  start(now = performance.now()): void {
    this.startAt = now;
    this.index = 0;
    this.loop = 0;
    this.running = true;
  }

  stop(): void {
    this.running = false;
  }

  /** Sends every packet due by `now`. Returns how many went out. */
  pump(now = performance.now()): number {
    if (!this.running) return 0;
    const { packets, seconds } = this.clip;
    let n = 0;
    for (;;) {
      const p = packets[this.index];
      const due = this.startAt + (this.loop * seconds + p.at) * 1000;
      if (due > now) break;
      const lag = now - due;
      if (lag > this.maxLagMs) this.maxLagMs = lag;
      const buf = Buffer.from(p.raw);
      buf.writeUInt16BE(this.seq[p.kind], 2);
      this.seq[p.kind] = (this.seq[p.kind] + 1) & 0xffff;
      const loopTicks = p.kind === 'video' ? this.clip.videoLoopTicks : this.clip.audioLoopTicks;
      buf.writeUInt32BE((this.tsBase[p.kind] + this.loop * loopTicks + p.tsRel) >>> 0, 4);
      this.sink[p.kind](buf);
      this.sent++;
      this.sentBytes += buf.length;
      n++;
      if (++this.index >= packets.length) {
        this.index = 0;
        this.loop++;
      }
      if (n > 20_000) break; // bounded per call, whatever happens
    }
    return n;
  }
}

/** Drives many replays from one timer (bounded: stops with stop()). */
export class ReplayClock {
  private timer: NodeJS.Timeout | undefined;
  readonly replays = new Set<Replay>();

  constructor(private readonly everyMs = 5) {}

  add(r: Replay): void {
    this.replays.add(r);
    this.timer ??= setInterval(() => {
      const now = performance.now();
      for (const x of this.replays) x.pump(now);
    }, this.everyMs);
  }

  remove(r: Replay): void {
    r.stop();
    this.replays.delete(r);
  }

  stop(): void {
    for (const r of this.replays) r.stop();
    this.replays.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
