import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startWeriftPublisher } from '../test/helpers/werift-publisher.js';
import { cleanupAll, installExitHandlers, onCleanup, track } from './cleanup.js';
import { log, median, r0, table } from './format.js';
import { buildGateway, GatewayProcess, sleep } from './gateway-process.js';

// How soon players show a picture from /live/<name>.ts (issue 23, item 3), on its own:
// `node --import tsx bench/live-start.ts` (BENCH_SKIP_BUILD=1 to use the existing dist/,
// BENCH_LIVE_RUNS=5). The gateway runs as its own process; a werift publisher sends 720p30
// H.264 (a keyframe a second, as the gateway asks of browsers) and Opus for 6 s, then:
// - cold, BENCH_LIVE_COLD_RUNS times each (3): the stream's first /live viewer, whose
//   request starts the /live ffmpeg: ffmpeg, ffplay and VLC, each once /live has stopped
//   again (idleStopSeconds after the last viewer);
// - warm: with another viewer holding /live open for 6.5 s, BENCH_LIVE_RUNS times each:
//   ffmpeg with its default probing (time from its start to the first decoded frame's
//   bytes on its stdout, and how its probe ended), ffprobe (time to its answer), ffmpeg
//   with libavformat's own default `-scan_all_pmts 0` (as apps on the library open
//   inputs), VLC (cvlc as nobody, scene filter: time to the first picture it writes), and
//   ffplay (SDL dummy drivers, showinfo: time to its first filtered picture, and how far it
//   plays behind a reader that takes /live as fast as it comes).

const RUNS = Number(process.env.BENCH_LIVE_RUNS ?? 5);
const COLD_RUNS = Number(process.env.BENCH_LIVE_COLD_RUNS ?? 3);
const NAME = 'live-start';

interface Timed {
  ms: number;
  note: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 20_000): Promise<{ firstStdoutMs: number; lines: [number, string][] }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    track(p);
    let firstStdoutMs = NaN;
    const lines: [number, string][] = [];
    let rest = '';
    p.stderr.on('data', (d: Buffer) => {
      const at = performance.now() - t0;
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop()!;
      for (const l of parts) lines.push([at, l]);
    });
    p.stdout.on('data', () => {
      if (Number.isNaN(firstStdoutMs)) firstStdoutMs = performance.now() - t0;
    });
    const killer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', () => {
      clearTimeout(killer);
      resolve({ firstStdoutMs, lines });
    });
  });
}

const probeEnd = (lines: [number, string][]): string =>
  lines.some(([, l]) => l.includes('All info found')) ? 'all info found' : (/max_analyze_duration \d+ reached/.exec(lines.map(([, l]) => l).join('\n'))?.[0] ?? '?');

async function ffmpegFirstFrame(url: string, inputArgs: string[] = []): Promise<Timed> {
  const r = await run('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'debug', ...inputArgs, '-i', url, '-map', '0:v:0', '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1']);
  return { ms: r.firstStdoutMs, note: probeEnd(r.lines) };
}

async function ffprobeAnswer(url: string): Promise<Timed> {
  const r = await run('ffprobe', ['-hide_banner', '-loglevel', 'debug', '-show_entries', 'stream=codec_name,sample_rate,channels', '-of', 'compact', url]);
  return { ms: r.firstStdoutMs, note: probeEnd(r.lines) };
}

async function vlcFirstPicture(url: string): Promise<Timed> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vlc-start-'));
  fs.chmodSync(dir, 0o777); // VLC runs as nobody (it refuses root)
  const t0 = performance.now();
  let first = NaN;
  const poll = setInterval(() => {
    if (Number.isNaN(first) && fs.readdirSync(dir).length) first = performance.now() - t0;
  }, 5);
  const args = ['-u', 'nobody', '--', 'cvlc', '-vv', '-I', 'dummy', '--no-audio', '--vout=dummy', '--video-filter=scene', `--scene-path=${dir}`, '--scene-format=png', '--scene-ratio=1', '--scene-prefix=f', '--run-time=3', '--play-and-exit', url];
  const r = await run('runuser', args);
  clearInterval(poll);
  fs.rmSync(dir, { recursive: true, force: true });
  const discontinuities = r.lines.filter(([, l]) => /discontinuity/i.test(l)).length;
  return { ms: first, note: `${discontinuities} discontinuity lines` };
}

/** A reader that takes /live as fast as it comes: when each video PTS arrived. */
function edgeReader(url: string): { arrival: Map<number, number>; close: () => void } {
  const u = new URL(url);
  const arrival = new Map<number, number>();
  let buf = Buffer.alloc(0);
  let header = true;
  const socket = net.connect(Number(u.port), u.hostname, () => socket.write(`GET ${u.pathname} HTTP/1.0\r\nHost: x\r\n\r\n`));
  socket.on('error', () => undefined);
  socket.on('data', (d: Buffer) => {
    const now = performance.now();
    buf = Buffer.concat([buf, d]);
    if (header) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      buf = buf.subarray(end + 4);
      header = false;
    }
    for (; buf.length >= 188; buf = buf.subarray(188)) {
      const p = buf;
      if (!(p[1] & 0x40) || (((p[1] & 0x1f) << 8) | p[2]) !== 0x100) continue; // PES starts of the video PID
      const q = p.subarray((p[3] >> 4) & 2 ? 5 + p[4] : 4);
      if (q[0] !== 0 || q[1] !== 0 || q[2] !== 1 || !(q[7] & 0x80)) continue;
      const b = q.subarray(9);
      const pts = ((b[0] >> 1) & 7) * 2 ** 30 + b[1] * 2 ** 22 + (b[2] >> 1) * 2 ** 15 + b[3] * 2 ** 7 + (b[4] >> 1);
      if (!arrival.has(pts)) arrival.set(pts, now);
    }
  });
  return { arrival, close: () => socket.destroy() };
}

async function ffplayStart(url: string, arrival: Map<number, number>): Promise<Timed> {
  const t0 = performance.now();
  const r = await run('ffplay', ['-hide_banner', '-loglevel', 'info', '-autoexit', '-t', '6', '-vf', 'showinfo', url], { ...process.env, SDL_AUDIODRIVER: 'dummy', SDL_VIDEODRIVER: 'dummy' });
  const shown = r.lines.flatMap(([at, l]) => {
    const m = /n:\s*\d+ pts:\s*(\d+)/.exec(l);
    return m ? [{ at: t0 + at, pts: Number(m[1]) }] : [];
  });
  const behind = shown.filter((s) => arrival.has(s.pts)).map((s) => s.at - arrival.get(s.pts)!);
  const note = !shown.length ? 'no picture' : behind.length ? `plays ${(median(behind.slice(-60)) / 1000).toFixed(1)} s behind the edge` : 'a picture';
  return { ms: shown.length ? shown[0].at - t0 : NaN, note };
}

async function main(): Promise<void> {
  installExitHandlers();
  if (!process.env.BENCH_SKIP_BUILD) buildGateway();
  const gw = await GatewayProcess.start({ HLS_AUTO: 'true' });
  onCleanup(() => gw.kill());
  const pub = await startWeriftPublisher({ whipUrl: `${gw.url}/whip/${NAME}`, width: 1280, height: 720, fps: 30, gop: 30, videoKbps: 2600 });
  onCleanup(() => pub.stop());
  if (pub.status !== 201) throw new Error(`publish refused: ${pub.status} ${pub.errorText}`);
  await pub.connected();
  const live = `${gw.url}/live/${NAME}.ts`;
  await sleep(6000);
  const rows: (string | number)[][] = [];
  const add = (viewer: string, results: Timed[]) => {
    const ms = results.map((r) => r.ms);
    const ok = ms.filter((x) => !Number.isNaN(x));
    rows.push([viewer, results.length, ok.length ? r0(median(ok)) : '-', ok.length ? `${r0(Math.min(...ok))}-${r0(Math.max(...ok))}` : '-', [...new Set(results.map((r) => r.note))].join('; ')]);
    log(`/live start: ${viewer}: ${results.map((r) => `${r0(r.ms)} ms (${r.note})`).join(', ')}`);
  };
  const vlc = spawnSync('which', ['cvlc']).status === 0;
  // /live stops mpegtsHttp.idleStopSeconds (10 s) after its last viewer: then the next one starts it.
  const outputUrl = `${gw.url}/api/streams/${NAME}/outputs/mpegts-http`;
  const stopped = async () => {
    for (let waited = 0; waited < 30_000 && (await fetch(outputUrl)).status !== 404; waited += 250) await sleep(250);
    await sleep(Math.random() * 1000); // land anywhere in the keyframe interval
  };
  const cold: Record<string, Timed[]> = { ffmpeg: [], ffplay: [], vlc: [] };
  for (let i = 0; i < COLD_RUNS; i++) {
    cold.ffmpeg.push(await ffmpegFirstFrame(live));
    await stopped();
    cold.ffplay.push(await ffplayStart(live, new Map()));
    await stopped();
    if (vlc) {
      cold.vlc.push(await vlcFirstPicture(live));
      await stopped();
    }
  }
  add('ffmpeg, cold (its request starts /live)', cold.ffmpeg);
  add('ffplay, cold (first picture)', cold.ffplay);
  if (vlc) add('VLC 3, cold (first picture; its request starts /live)', cold.vlc);
  const edge = edgeReader(live);
  await sleep(6500);
  const results: Record<string, Timed[]> = { ffmpeg: [], ffprobe: [], library: [], vlc: [], ffplay: [] };
  for (let i = 0; i < RUNS; i++) {
    results.ffmpeg.push(await ffmpegFirstFrame(live));
    await sleep(300 + Math.random() * 700); // land anywhere in the keyframe interval
    results.ffprobe.push(await ffprobeAnswer(live));
    await sleep(300 + Math.random() * 700);
    results.library.push(await ffmpegFirstFrame(live, ['-scan_all_pmts', '0']));
    await sleep(300 + Math.random() * 700);
    if (vlc) results.vlc.push(await vlcFirstPicture(live));
    await sleep(300 + Math.random() * 700);
  }
  for (let i = 0; i < Math.min(RUNS, 3); i++) results.ffplay.push(await ffplayStart(live, edge.arrival));
  edge.close();
  add('ffmpeg, default probing', results.ffmpeg);
  add('ffprobe, default probing (its answer)', results.ffprobe);
  add('ffmpeg -scan_all_pmts 0 (libavformat default)', results.library);
  if (vlc) add('VLC 3 (first picture)', results.vlc);
  add('ffplay (first picture)', results.ffplay);
  console.log(table(['viewer (stream live 6 s)', 'runs', 'median ms', 'range ms', 'notes'], rows));
  await cleanupAll();
  process.exit(0);
}

main().catch(async (e: unknown) => {
  console.error(e);
  await cleanupAll();
  process.exit(1);
});
