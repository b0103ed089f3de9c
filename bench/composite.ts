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
//     averaged over the steady seconds), participants being werift publishers replaying the
//     720p30 H.264 + Opus clip (as browsers send), the composite's HLS running.
//   - Added delay: glass to glass. Chromium publishes the canvas clock (640x360, 30 fps,
//     default sender settings) as the composite's first participant (its first tile); ffmpeg
//     reads /live of the clock's own stream and then of the composite (cropped to the clock's
//     tile), each for SECONDS; the difference of the medians is what the compositor adds.
//   - Fit: 4-person composites side by side (each its own compositor, the same four
//     participants) until the compositors fall behind real time or the machine is full.
// Run alone: node --import tsx bench/composite.ts (after npm run build).

const SIZES = (process.env.BENCH_COMPOSITE_SIZES ?? '2,4,9').split(',').map(Number).filter((n) => n > 0);
const SECONDS = Number(process.env.BENCH_COMPOSITE_SECONDS ?? 12);
const WARMUP_SECONDS = 5;
const MAX_FIT = Number(process.env.BENCH_COMPOSITE_MAX_FIT ?? 6);
const OUT = { width: 1280, height: 720 };
/** What each werift participant sends: the load test's clip (bench/run.ts). */
const CLIP: EncodeOptions = { width: 1280, height: 720, fps: 30, videoKbps: 2500, seconds: 10, gop: 30 };

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
  rows: CompositeRow[];
  /** 4-person composites running side by side: each compositor's speed (media seconds per second) and the machine's busy %. */
  fit: { composites: number; cpuPercentEach: number; slowestSpeed: number; machineBusyPercent: number }[];
  fits: number;
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

async function waitComposite(gw: GatewayProcess, name: string, participants: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const c = await gw.api<CompositeJson>(`/api/composites/${name}`).catch(() => undefined);
    const s = await gw.api<{ outputs: { id: string; state: string }[] }>(`/api/streams/${name}`).catch(() => undefined);
    if (c?.participants.length === participants && c.compositor?.state === 'running' && s?.outputs.some((o) => o.id === 'hls' && o.state === 'running')) return;
    await sleep(300);
  }
  throw new Error(`composite ${name} not running with ${participants} participants and HLS within 30 s`);
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
  const gw = await GatewayProcess.start({ COMPOSITES_MAX_CONCURRENT: String(MAX_FIT + 1) });
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
        row.directMs = direct.shown.medianMs;
        row.compositeMs = through.shown.medianMs;
        row.addedMs = through.shown.medianMs - direct.shown.medianMs;
        log(`composite ${n}: compositor ${r1(row.cpuPercent)} % of a core, gateway ${r1(row.gatewayPercent)} %; /live ${r0(row.directMs)} ms direct, ${r0(row.compositeMs)} ms through the composite (+${r0(row.addedMs)} ms)`);
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
        const progress0 = await Promise.all(Array.from({ length: k }, (_, i) => outputSeconds(gw, `fit${i + 1}`)));
        const t0 = performance.now();
        const cpus = await Promise.all(Array.from({ length: k }, (_, i) => compositorCpu(gw, `fit${i + 1}`, SECONDS)));
        const progress1 = await Promise.all(Array.from({ length: k }, (_, i) => outputSeconds(gw, `fit${i + 1}`)));
        const wall = (performance.now() - t0) / 1000;
        const m1 = systemCpu();
        const speeds = progress1.map((p, i) => (p - progress0[i]) / wall);
        const entry = { composites: k, cpuPercentEach: median(cpus), slowestSpeed: Math.min(...speeds), machineBusyPercent: systemBusyPercent(m0, m1) };
        fitRows.push(entry);
        log(`composite fit: ${k} x 4 persons: compositors ${r1(entry.cpuPercentEach)} % each, slowest at ${r1(entry.slowestSpeed)}x real time, machine ${r0(entry.machineBusyPercent)} % busy`);
        if (entry.slowestSpeed < 0.97 || entry.machineBusyPercent > 90) break;
        fits = k;
      }
    } finally {
      for (let k = 1; k <= MAX_FIT; k++) await deleteComposite(gw, `fit${k}`);
      for (const p of four) await p.close().catch(() => undefined);
    }
    return { rows, fit: fitRows, fits };
  } finally {
    await browser?.close().catch(() => undefined);
    await site.close();
    await gw.stop();
  }
}

/** Seconds of media the composite's HLS has listed (its playlist's durations plus its media sequence's): how far its programme has come. */
async function outputSeconds(gw: GatewayProcess, name: string): Promise<number> {
  const text = await fetch(`${gw.url}/hls/${name}/index.m3u8`).then((r) => r.text(), () => '');
  const seq = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0);
  const durations = [...text.matchAll(/#EXTINF:([\d.]+)/g)].map((m) => Number(m[1]));
  const mean = durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : 1;
  return seq * mean + durations.reduce((a, b) => a + b, 0);
}

export function printComposite(r: CompositeReport): string[] {
  const o = ['-- 10. Composites (1280x720 at 30 fps out; participants 720p30 H.264, one of them the Chromium clock)'];
  o.push(...table(['participants', 'compositor % of a core', 'gateway %', '/live direct ms', 'through composite ms', 'added ms'], r.rows.map((x) => [String(x.participants), r1(x.cpuPercent), r1(x.gatewayPercent), x.directMs === undefined ? '-' : r0(x.directMs), x.compositeMs === undefined ? '-' : r0(x.compositeMs), x.addedMs === undefined ? (x.error ?? '-') : r0(x.addedMs)])));
  o.push(...table(['4-person composites', 'compositor % each', 'slowest speed', 'machine busy %'], r.fit.map((f) => [String(f.composites), r1(f.cpuPercentEach), r1(f.slowestSpeed), r0(f.machineBusyPercent)])));
  o.push(`4-person composites that kept real time on this machine: ${r.fits}`);
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
