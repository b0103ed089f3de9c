import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { launchChromium, PublisherPage, startPageServer } from '../test/helpers/chromium.js';
import { onCleanup, track } from './cleanup.js';
import { r0, r1, table } from './format.js';
import { GatewayProcess, sleep } from './gateway-process.js';
import { procStat } from './proc.js';
import { buildArgs, loadSharedDefinition, resolveParams } from '../src/pipelines/definition.js';

// Scenario 8: the VP8 -> H.264 transcoder (pipelines/shared/h264.json, exactly as the
// gateway runs it) at 640x360, 1280x720 and 1920x1080, 30 fps: a VP8 clip (libvpx in its
// real-time mode, as a browser encodes) is captured as RTP once, then replayed in real time
// into the transcoder, whose H.264 RTP comes back to a socket here. Measured: the
// transcoder's CPU over the replay (after 2 s), and how late each picture comes back
// (arrival time minus the moment its RTP timestamp stands for, from the first one on).
// Then the picture a viewer gets when a VP8 publisher changes size (resizeRuns).

/** width, height, VP8 kbit/s, transcode.maxHeight (the source height: not scaled). */
const SIZES: [number, number, number, number][] = [
  [640, 360, 800, 360],
  [1280, 720, 2500, 720],
  [1920, 1080, 4000, 1080],
  [1920, 1080, 4000, 720], // the default cap
];
const RESIZE_RUNS = 3;
const SECONDS = 12;

export interface TranscodeRow {
  size: string;
  /** What the transcoder sends (scaled to transcode.maxHeight). */
  out: string;
  kbps: number;
  cpuPercent: number;
  delayMs: { median: number; p90: number };
  pictures: number;
}

async function socket(onPacket: (m: Buffer) => void): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 16 << 20 });
  s.on('message', onPacket);
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s;
}

async function run(cmd: string, args: string[]): Promise<void> {
  const p = spawn(cmd, args, { stdio: 'ignore' });
  track(p);
  await new Promise((r) => p.once('exit', r));
}

async function measure(width: number, height: number, kbps: number, maxHeight: number, dir: string): Promise<TranscodeRow> {
  const vp8: Buffer[] = [];
  const cap = await socket((m) => vp8.push(Buffer.from(m)));
  const capPort = (cap.address() as AddressInfo).port;
  // -re: captured at the pace it plays; faster, the 1080p clip overflowed the socket's buffer
  // (net.core.rmem_max caps recvBufferSize) and the transcoder got a broken stream.
  await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=30`, '-t', String(SECONDS),
    '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', `${kbps}k`, '-g', '3000', '-payload_type', '96', '-f', 'rtp', `rtp://127.0.0.1:${capPort}?pkt_size=1200`]);
  await sleep(300);
  cap.close();

  const back: { at: number; ts: number }[] = [];
  const rx = await socket((m) => {
    if (m[1] >= 192 && m[1] <= 223) return; // RTCP
    if (m[1] & 0x80) back.push({ at: performance.now(), ts: m.readUInt32BE(4) }); // marker: a picture's last packet
  });
  const port = (rx.address() as AddressInfo).port;
  const inPort = 46300 + 2 * Math.floor(Math.random() * 100);
  const sdp = path.join(dir, `in-${width}.sdp`);
  await writeFile(sdp, `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video ${inPort} RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\n`);
  const def = loadSharedDefinition('h264');
  const args = buildArgs(def, { ...resolveParams(def, { port, keyframeSeconds: 1, videoKbps: kbps, maxHeight }), dir, stream: 'bench', audioChannels: 2, audioBitrate: '128k', file: '' }, { video: true, audio: false });
  const ff = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-localaddr', '127.0.0.1', ...args.inputOptions, '-i', sdp, ...args.outputOptions, args.target], { stdio: 'ignore' });
  track(ff);
  await sleep(1000);
  const tx = dgram.createSocket('udp4');
  const t0 = performance.now();
  const ts0 = vp8[0].readUInt32BE(4);
  const cpuSeconds = () => procStat(ff.pid!)?.cpuSeconds ?? NaN;
  let cpu0: { seconds: number; at: number } | undefined;
  for (const p of vp8) {
    const due = t0 + ((p.readUInt32BE(4) - ts0) >>> 0) / 90;
    while (performance.now() < due) await sleep(1);
    if (!cpu0 && performance.now() - t0 > 2000) cpu0 = { seconds: cpuSeconds(), at: performance.now() };
    tx.send(p, inPort, '127.0.0.1');
  }
  const cpuPercent = cpu0 ? ((cpuSeconds() - cpu0.seconds) * 100) / ((performance.now() - cpu0.at) / 1000) : NaN;
  await sleep(1000);
  ff.kill('SIGKILL');
  tx.close();
  rx.close();
  const first = back[0]?.ts ?? 0;
  const delays = back.map((b) => b.at - (t0 + ((b.ts - first) >>> 0) / 90)).sort((a, b) => a - b);
  return {
    size: `${width}x${height}`,
    out: maxHeight < height ? `${Math.round((width * maxHeight) / height / 2) * 2}x${maxHeight}` : `${width}x${height}`,
    kbps,
    cpuPercent: r1(cpuPercent),
    delayMs: { median: r0(delays[delays.length >> 1] ?? NaN), p90: r0(delays[Math.floor(delays.length * 0.9)] ?? NaN) },
    pictures: back.length,
  };
}

export interface ResizeRun {
  /** Video frames /live delivered over RESIZE_SECONDS. */
  frames: number;
  /** The gap in picture timestamps where the new size starts, and the longest gap, ms. */
  gapAtSwitchMs: number;
  longestGapMs: number;
}

export interface TranscodeReport {
  rows: TranscodeRow[];
  /** A Chromium VP8 publisher halving its picture mid-stream, read back from /live. */
  resize?: ResizeRun[];
  resizeSkipped?: string;
}

const RESIZE_SECONDS = 12;

/**
 * What a viewer sees when a VP8 publisher changes its picture size: Chromium (forced to
 * VP8, default sender settings) publishes 640x480 to a gateway process, ffprobe reads the
 * frames of /live for RESIZE_SECONDS, and 5 s in the page halves its picture
 * (scaleResolutionDownBy 2); the gateway replaces its transcoder (shared-encoder.ts).
 */
async function resizeRuns(log: (m: string) => void): Promise<ResizeRun[]> {
  const [gw, site, browser] = await Promise.all([GatewayProcess.start(), startPageServer(), launchChromium()]);
  const undo = onCleanup(() => browser.close());
  try {
    const runs: ResizeRun[] = [];
    for (let run = 0; run < RESIZE_RUNS; run++) {
      const name = `resize${run}`;
      const page = await PublisherPage.open(browser, site.url);
      const res = await page.publish(`${gw.url}/whip/${name}`, { video: { width: 640, height: 480 }, audio: true, onlyVideo: ['VP8'] });
      if (res.status !== 201) throw new Error(`WHIP ${res.status}: ${res.body}`);
      await page.connected();
      for (let i = 0; i < 100 && !(await fetch(`${gw.url}/hls/${name}/index.m3u8`)).ok; i++) await sleep(200);
      const probe = spawn('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'frame=pts_time,width', '-of', 'csv=p=0', '-read_intervals', `%+${RESIZE_SECONDS}`, `${gw.url}/live/${name}.ts`]);
      track(probe);
      let out = '';
      probe.stdout.on('data', (c: Buffer) => (out += c.toString()));
      await sleep(5000);
      await page.scaleVideoDown(2);
      await new Promise((r) => probe.once('exit', r));
      const frames = out.trim().split('\n').map((l) => l.split(',').map(Number)).filter((f) => f.length === 2 && !f.some(Number.isNaN)).sort((a, b) => a[0] - b[0]);
      const at = frames.findIndex((f) => f[1] === 320);
      const gaps = frames.slice(1).map((f, i) => f[0] - frames[i][0]);
      runs.push({ frames: frames.length, gapAtSwitchMs: at > 0 ? r0((frames[at][0] - frames[at - 1][0]) * 1000) : NaN, longestGapMs: r0(Math.max(0, ...gaps) * 1000) });
      log(`transcode resize run ${run}: ${JSON.stringify(runs.at(-1))}`);
      await page.stop().catch(() => undefined);
      await page.close();
    }
    return runs;
  } finally {
    await browser.close();
    undo();
    await site.close();
    await gw.stop();
  }
}

export async function transcodeBench(log: (m: string) => void): Promise<TranscodeReport> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-transcode-'));
  const report: TranscodeReport = { rows: [] };
  try {
    for (const [w, h, kbps, maxHeight] of SIZES) {
      const row = await measure(w, h, kbps, maxHeight, dir);
      log(`transcode ${row.size} -> ${row.out}: ${row.cpuPercent} % of a core, delay median ${row.delayMs.median} ms`);
      report.rows.push(row);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  try {
    report.resize = await resizeRuns(log);
  } catch (e) {
    report.resizeSkipped = (e as Error).message;
  }
  return report;
}

export function printTranscode({ rows, resize, resizeSkipped }: TranscodeReport, cores: number): string[] {
  const o = [`-- 8. VP8 -> H.264 transcoder (pipelines/shared/h264.json), one stream, 30 fps, ${SECONDS} s replayed in real time --`];
  o.push(table(['size in', 'out (maxHeight)', 'VP8 kbit/s in', 'transcoder CPU%', 'delay median ms', 'delay p90 ms', 'pictures back'], rows.map((r) => [r.size, r.out, r.kbps, r.cpuPercent, r.delayMs.median, r.delayMs.p90, r.pictures])));
  const fit = rows.map((r) => `${r.size}: ${r.cpuPercent > 0 ? Math.floor((cores * 100 * 0.8) / r.cpuPercent) : '-'}`).join(', ');
  o.push(`(delay: a picture's arrival minus the moment its RTP timestamp stands for, from the first picture on; streams that fit in 80 % of the ${cores} cores, the transcoders alone: ${fit})`);
  if (resize) {
    o.push(`A Chromium VP8 publisher halving its picture (640x480 -> 320x240), /live read for ${RESIZE_SECONDS} s, ${resize.length} runs:`);
    o.push(table(['run', 'frames', 'gap where the new size starts ms', 'longest gap ms'], resize.map((r, i) => [i, r.frames, r.gapAtSwitchMs, r.longestGapMs])));
  }
  if (resizeSkipped) o.push(`(resize runs failed: ${resizeSkipped})`);
  return o;
}
