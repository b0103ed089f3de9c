import { spawn, type ChildProcess } from 'node:child_process';
import { decodeGray } from './clock-decoder.js';
import type { ClockSample, ViewerRun } from './clock-samples.js';

// ffmpeg as a player of the glass-to-glass clock: it opens a URL (/live/<name>.ts, an HLS
// playlist) or an SDP file (the rtp output) with its default options, as ffplay or an
// IPTV app built on it would (default probing, the hls demuxer's default live start three
// segments back, default decoder threads), and writes every decoded picture as raw
// grayscale to stdout. Each picture is timestamped with Date.now() as its last byte
// arrives and its block code read. showinfo prints each picture's presentation time on
// stderr, in the same order, so clock-samples.ts can also pace the pictures as a player
// would show them (ffmpeg itself reads as fast as the input comes).

export interface FfmpegViewerOptions {
  viewer: string;
  /** A URL or an SDP file. */
  input: string;
  /** Options before -i (e.g. -protocol_whitelist for an SDP). */
  inputArgs?: string[];
  /** How long to watch after the first picture. */
  seconds: number;
  /** Give up when no picture came within this long of the start. */
  firstPictureTimeoutMs?: number;
  /** Size the pictures are scaled to for reading (the code is relative: any size decodes). */
  width?: number;
  height?: number;
  /** A filter before reading the code, e.g. a crop to one tile of a composite. */
  filter?: string;
  /** Called with the process once spawned (the bench registers it for cleanup). */
  onSpawn?: (proc: ChildProcess) => void;
}

const SHOWINFO = /\bn:\s*(\d+)\s+pts:\s*-?\d+\s+pts_time:(-?[\d.]+)/;

export function ffmpegViewer(o: FfmpegViewerOptions): Promise<ViewerRun> {
  const width = o.width ?? 640;
  const height = o.height ?? 360;
  const frameBytes = width * height;
  const args = [
    '-hide_banner', '-nostdin', '-nostats', '-loglevel', 'info',
    ...(o.inputArgs ?? []), '-i', o.input,
    // passthrough: one picture out per picture decoded (no frame duplication or dropping to a constant rate).
    '-map', '0:v:0', '-vf', o.filter ? `${o.filter},showinfo` : 'showinfo', '-fps_mode', 'passthrough',
    '-s', `${width}x${height}`, '-pix_fmt', 'gray', '-f', 'rawvideo', 'pipe:1',
  ];
  const run: ViewerRun = { viewer: o.viewer, startedAt: Date.now(), pictures: 0, samples: [] };
  const proc = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  o.onSpawn?.(proc);
  const arrivals: { at: number; value?: number }[] = [];
  const pts: number[] = [];
  const stderrTail: string[] = [];
  let pending: Buffer = Buffer.alloc(0);

  proc.stdout.on('data', (chunk: Buffer) => {
    const at = Date.now();
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= frameBytes) {
      const frame = new Uint8Array(pending.buffer, pending.byteOffset, frameBytes);
      run.firstPictureAt ??= at;
      arrivals.push({ at, value: decodeGray(frame, width, height) });
      pending = pending.subarray(frameBytes);
    }
    // Keep a short remainder in its own buffer rather than a view into a large chunk.
    if (pending.length && pending.byteOffset > 0) pending = Buffer.from(pending);
  });

  let line = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (text: string) => {
    line += text;
    let i: number;
    while ((i = line.search(/[\r\n]/)) >= 0) {
      const l = line.slice(0, i);
      line = line.slice(i + 1);
      const m = SHOWINFO.exec(l);
      if (m) pts[Number(m[1])] = Number(m[2]) * 1000;
      else if (l.trim()) {
        stderrTail.push(l);
        if (stderrTail.length > 20) stderrTail.shift();
      }
    }
  });

  return new Promise((resolve) => {
    let finished = false;
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      proc.kill('SIGKILL');
      run.pictures = arrivals.length;
      run.samples = arrivals.flatMap((a, i): ClockSample[] => (a.value === undefined ? [] : [{ captureMs: a.value, shownAtMs: a.at, ptsMs: pts[i] }]));
      if (error) run.error = error;
      resolve(run);
    };
    const deadline = run.startedAt + (o.firstPictureTimeoutMs ?? 20_000);
    const timer = setInterval(() => {
      if (run.firstPictureAt === undefined && Date.now() > deadline) finish(`no picture within ${Date.now() - run.startedAt} ms; ffmpeg: ${stderrTail.slice(-3).join(' | ')}`);
      else if (run.firstPictureAt !== undefined && Date.now() > run.firstPictureAt + o.seconds * 1000) finish();
    }, 100);
    proc.once('exit', (code, signal) => finish(`ffmpeg exited (${code ?? signal}) before the end: ${stderrTail.slice(-3).join(' | ')}`));
    proc.once('error', (e) => finish(`ffmpeg: ${e.message}`));
  });
}
