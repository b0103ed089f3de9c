import type { Browser } from 'playwright-core';
import { fit, placements } from '../src/composites/layout.js';
import { launchChromium } from '../test/helpers/chromium.js';
import { ffmpegViewer } from '../test/helpers/clock-ffmpeg.js';
import { ClockPublisher, startClockServer } from '../test/helpers/clock-publisher.js';
import { figures, type ViewerFigures } from '../test/helpers/clock-samples.js';
import { pathToFileURL } from 'node:url';
import { cleanupAll, installExitHandlers, onCleanup, track } from './cleanup.js';
import { log, median, r0, r1, table } from './format.js';
import { buildGateway, GatewayProcess, sleep } from './gateway-process.js';
import { encodeClip, Replay, ReplayClock, type Clip, type EncodeOptions } from './media.js';
import { procStat, systemBusyPercent, systemCpu } from './proc.js';
import { publish, type BenchPublisher } from './publisher.js';

// Scenario 10, composites (issue 22): a call of 2, 4 and 9 participants composed into one
// 1280x720 at 30 fps programme by the gateway (built, as its own process).
//   - CPU: the compositor ffmpeg's share of a core (what the API and /metrics show,
//     median over the steady seconds), participants being werift publishers replaying the
//     720p30 H.264 + Opus clip (as browsers send), the composite's HLS running. The
//     participants' own HLS is off (hls.auto false): on 2 cores their outputs would
//     measure the participants, not the compositor.
//   - Added delay: glass to glass. Chromium publishes the canvas clock (640x360, 30 fps,
//     default sender settings) as the composite's first participant (its first tile); ffmpeg
//     reads /live of the clock's own stream and then of the composite (cropped to the clock's
//     tile), each for SECONDS; the difference of the medians (latency when ffmpeg's decoder
//     gives each picture out, once the backlog /live starts with is read) is what the
//     compositor adds.
//   - Fit: 4-person composites side by side (each its own compositor and HLS, the same
//     four participants) until a compositor falls behind real time (fewer than 29 of its
//     30 pictures a second reach the gateway).
// Run alone: node --import tsx bench/composite.ts (after npm run build).

const SIZES = (process.env.BENCH_COMPOSITE_SIZES ?? '2,4,9').split(',').map(Number).filter((n) => n > 0);
const SECONDS = Number(process.env.BENCH_COMPOSITE_SECONDS ?? 12);
const WARMUP_SECONDS = 5;
const MAX_FIT = Number(process.env.BENCH_COMPOSITE_MAX_FIT ?? 6);
const OUT = { width: 1280, height: 720 };
/** What each werift participant sends: the load test's clip (bench/run.ts). */
const [IN_W, IN_H] = (process.env.BENCH_COMPOSITE_INPUT ?? '1280x720').split('x').map(Number);
const CLIP: EncodeOptions = { width: IN_W, height: IN_H, fps: 30, videoKbps: IN_H >= 720 ? 2500 : 800, seconds: 10, gop: 30 };

export interface CompositeRow {
  participants: number;
  /** The compositor's CPU, % of one core (median of the API's 2 s readings). */
  cpuPercent: number;
  /** The gateway process itself meanwhile (werift, forwarding), % of one core. */
  gatewayPercent: number;
  /** Glass to glass, /live, median: the clock's own stream and through the composite. */
  directMs?: number;
  compositeMs?: number;
  addedMs?: number;
  error?: string;
}

export interface CompositeReport {
  /** What each werift participant sends. */
  input: string;
  rows: CompositeRow[];
  /** 4-person composites running side by side: each compositor's CPU, the slowest one's pictures a second, the machine's busy %. */
  fit: { composites: number; cpuPercentEach: number; slowestFps: number; machineBusyPercent: number }[];
  fits: number;
  /** The gateway's warnings meanwhile (first few, distinct). */
  gatewayWarnings: string[];
}

interface CompositeJson {
  participants: string[];
  compositor?: { cpuPercent?: number; state: string };
}

const cpuSeconds = (pid: number): number => procStat(pid)?.cpuSeconds ?? 0;

async function createComposite(gw: GatewayProcess, name: string, streams: string[]): Promise<void> {
  const r = await fetch(`${gw.url}/api/composites`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name, streams, ...OUT, fps: 30 }) });
  if (r.status !== 201) throw new Error(`POST /api/composites ${name}: ${r.status} ${await r.text()}`);
}

async function deleteComposite(gw: GatewayProcess, name: string): Promise<void> {
  await fetch(`${gw.url}/api/composites/${name}`, { method: 'DELETE' }).then((r) => r.body?.cancel());
}

/** Waits for the composite's compositor with all its participants, then starts its HLS (hls.auto is off) and waits for that. */
async function waitComposite(gw: GatewayProcess, name: string, participants: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  let hls = false;
  while (Date.now() < deadline) {
    const c = await gw.api<CompositeJson>(`/api/composites/${name}`).catch(() => undefined);
    const s = await gw.api<{ outputs: { id: string; state: string }[] }>(`/api/streams/${name}`).catch(() => undefined);
    if (c?.participants.length === participants && c.compositor?.state === 'running' && s) {
      if (!hls) {
        const r = await fetch(`${gw.url}/api/streams/${name}/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'hls' }) });
        await r.body?.cancel();
        hls = r.status === 201;
      }
      if (s.outputs.some((o) => o.id === 'hls' && o.state === 'running')) return;
    }
    await sleep(300);
  }
  throw new Error(`composite ${name} not running with ${participants} participants and HLS within 60 s`);
}

/** The composite's pictures a second as they reach the gateway (its video track's fps), read every 2 s for `seconds`: the median. */
async function compositeFps(gw: GatewayProcess, name: string, seconds: number): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < seconds / 2; i++) {
    await sleep(2000);
    const s = await gw.api<{ tracks: { kind: string; fps?: number }[] }>(`/api/streams/${name}`).catch(() => undefined);
    const fps = s?.tracks.find((t) => t.kind === 'video')?.fps;
    if (fps !== undefined) readings.push(fps);
  }
  return median(readings);
}

/** The compositor's CPU as the API shows it, read every 2 s for `seconds`: the median. */
async function compositorCpu(gw: GatewayProcess, name: string, seconds: number): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < seconds / 2; i++) {
    await sleep(2000);
    const c = await gw.api<CompositeJson>(`/api/composites/${name}`).catch(() => undefined);
    if (c?.compositor?.cpuPercent !== undefined) readings.push(c.compositor.cpuPercent);
  }
  return median(readings);
}

async function participants(gw: GatewayProcess, clip: Clip, clock: ReplayClock, prefix: string, n: number): Promise<BenchPublisher[]> {
  const pubs: BenchPublisher[] = [];
  for (let i = 0; i < n; i++) {
    const pub = await publish(gw.url, `${prefix}-${String(i + 1).padStart(2, '0')}`);
    if (pub.status !== 201) throw new Error(`WHIP ${pub.status} ${pub.errorText ?? ''}`);
    onCleanup(() => pub.close());
    await pub.connected;
    const replay = new Replay(clip, pub.direct());
    replay.start();
    clock.add(replay);
    pubs.push(pub);
    await sleep(200); // joins in order
  }
  return pubs;
}

export async function compositeBench(clip: Clip): Promise<CompositeReport> {
  const gw = await GatewayProcess.start({ COMPOSITES_MAX_CONCURRENT: String(MAX_FIT + 1), HLS_AUTO: 'false' });
  const site = await startClockServer();
  let browser: Browser | undefined;
  const rows: CompositeRow[] = [];
  const fitRows: CompositeReport['fit'] = [];
  try {
    browser = await launchChromium();
    const b = browser;
    onCleanup(() => b.close());
    const clockPub = await ClockPublisher.open(browser, site.url);
    const res = await clockPub.publish(`${gw.url}/whip/call-00`);
    if (res.status !== 201) throw new Error(`clock WHIP ${res.status}: ${res.body.slice(0, 200)}`);
    await clockPub.connected();
    // Its HLS (hls.auto is off here) asks for a keyframe a second, as for every stream by default: /live starts near one.
    await fetch(`${gw.url}/api/streams/call-00/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'hls' }) }).then((r) => r.body?.cancel());
    await sleep(3000);
    const clock = new ReplayClock();
    for (const n of SIZES) {
      log(`composite: ${n} participants (the clock and ${n - 1} werift publishers), 1280x720 at 30 fps`);
      const row: CompositeRow = { participants: n, cpuPercent: 0, gatewayPercent: 0 };
      const pubs = await participants(gw, clip, clock, `call-n${n}`, n - 1);
      try {
        await createComposite(gw, `call${n}`, ['call-00', `call-n${n}-*`]);
        await waitComposite(gw, `call${n}`, n);
        await sleep(WARMUP_SECONDS * 1000);
        const g0 = cpuSeconds(gw.pid);
        const t0 = performance.now();
        row.cpuPercent = await compositorCpu(gw, `call${n}`, SECONDS);
        row.gatewayPercent = ((cpuSeconds(gw.pid) - g0) / ((performance.now() - t0) / 1000)) * 100;
        // Glass to glass: the clock's own stream, then its tile of the composite.
        const tile = placements('grid', OUT, Array.from({ length: n }, () => undefined))[0].tile;
        const pic = fit(tile, { width: 640, height: 360 });
        const direct: ViewerFigures = figures(await ffmpegViewer({ viewer: 'clock stream /live', input: `${gw.url}/live/call-00.ts`, seconds: SECONDS, onSpawn: (p) => track(p) }));
        const through: ViewerFigures = figures(await ffmpegViewer({ viewer: `composite of ${n} /live`, input: `${gw.url}/live/call${n}.ts`, seconds: SECONDS, filter: `crop=${pic.width}:${pic.height}:${pic.x}:${pic.y}`, onSpawn: (p) => track(p) }));
        if (direct.error || through.error) row.error = direct.error ?? through.error;
        // When ffmpeg's decoder gave each picture out, from 2 s after the first on (the backlog /live starts with is read by then).
        row.directMs = direct.decodedAt?.medianMs;
        row.compositeMs = through.decodedAt?.medianMs;
        if (row.directMs !== undefined && row.compositeMs !== undefined) row.addedMs = row.compositeMs - row.directMs;
        log(`composite ${n}: compositor ${r1(row.cpuPercent)} % of a core, gateway ${r1(row.gatewayPercent)} %; /live ${r0(row.directMs ?? NaN)} ms direct, ${r0(row.compositeMs ?? NaN)} ms through the composite (+${r0(row.addedMs ?? NaN)} ms)`);
      } catch (e) {
        row.error = (e as Error).message;
        log(`composite ${n}: FAILED ${row.error}`);
      } finally {
        await deleteComposite(gw, `call${n}`);
        for (const p of pubs) await p.close().catch(() => undefined);
      }
      rows.push(row);
    }
    await clockPub.stop().catch(() => undefined);

    // How many 4-person composites fit: the same four participants, one more composite at a time.
    log('composite: 4-person composites side by side');
    const four = await participants(gw, clip, clock, 'fit', 4);
    let fits = 0;
    try {
      for (let k = 1; k <= MAX_FIT; k++) {
        await createComposite(gw, `fit${k}`, ['fit-*']);
        await waitComposite(gw, `fit${k}`, 4);
        await sleep(WARMUP_SECONDS * 1000);
        const m0 = systemCpu();
        const names = Array.from({ length: k }, (_, i) => `fit${i + 1}`);
        const [cpus, fps] = await Promise.all([Promise.all(names.map((n) => compositorCpu(gw, n, SECONDS))), Promise.all(names.map((n) => compositeFps(gw, n, SECONDS)))]);
        const m1 = systemCpu();
        const entry = { composites: k, cpuPercentEach: median(cpus), slowestFps: Math.min(...fps), machineBusyPercent: systemBusyPercent(m0, m1) };
        fitRows.push(entry);
        log(`composite fit: ${k} x 4 persons: compositors ${r1(entry.cpuPercentEach)} % each, the slowest at ${r1(entry.slowestFps)} fps, machine ${r0(entry.machineBusyPercent)} % busy`);
        if (entry.slowestFps < 29) break;
        fits = k;
      }
    } finally {
      for (let k = 1; k <= MAX_FIT; k++) await deleteComposite(gw, `fit${k}`);
      for (const p of four) await p.close().catch(() => undefined);
    }
    return { input: `${clip.description}`, rows, fit: fitRows, fits, gatewayWarnings: [...new Set(gw.problems().map((l) => l.msg))].slice(0, 8) };
  } finally {
    await browser?.close().catch(() => undefined);
    await site.close();
    await gw.stop();
  }
}

export function printComposite(r: CompositeReport): string[] {
  const o = [`-- 10. Composites (1280x720 at 30 fps out; participants: the Chromium clock, 640x360, and werift publishers sending ${r.input})`];
  o.push(table(['participants', 'compositor % of a core', 'gateway %', '/live direct ms', 'through composite ms', 'added ms'], r.rows.map((x) => [String(x.participants), r1(x.cpuPercent), r1(x.gatewayPercent), x.directMs === undefined ? '-' : r0(x.directMs), x.compositeMs === undefined ? '-' : r0(x.compositeMs), x.addedMs === undefined ? (x.error ?? '-') : r0(x.addedMs)])));
  o.push(table(['4-person composites', 'compositor % each', 'slowest fps', 'machine busy %'], r.fit.map((f) => [String(f.composites), r1(f.cpuPercentEach), r1(f.slowestFps), r0(f.machineBusyPercent)])));
  o.push(`4-person composites that kept real time (30 fps) on this machine: ${r.fits}`);
  if (r.gatewayWarnings.length) o.push(`gateway warnings: ${r.gatewayWarnings.join(' | ').slice(0, 600)}`);
  return o;
}

// Run on its own: node --import tsx bench/composite.ts (BENCH_SKIP_BUILD=1 to use dist/ as it is).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  installExitHandlers();
  const main = async () => {
    if (!process.env.BENCH_SKIP_BUILD) buildGateway();
    const clip = await encodeClip(CLIP);
    const report = await compositeBench(clip);
    process.stdout.write(['', ...printComposite(report), '', 'JSON:', JSON.stringify(report), ''].join('\n'));
  };
  main().then(
    async () => (await cleanupAll(), process.exit(0)),
    async (e: unknown) => {
      process.stderr.write(`composite bench failed: ${(e as Error)?.stack ?? String(e)}\n`);
      await cleanupAll();
      process.exit(1);
    },
  );
}
