import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../test/helpers/chromium.js';
import { ffmpegViewer } from '../test/helpers/clock-ffmpeg.js';
import { ClockPublisher, startClockServer, type ClockStats } from '../test/helpers/clock-publisher.js';
import { figures, STEADY_AFTER_MS, type ViewerFigures, type ViewerRun } from '../test/helpers/clock-samples.js';
import { watchVideoPage } from '../test/helpers/clock-video-probe.js';
import { whepPageShim } from '../test/helpers/whep-page-shim.js';
import { cleanupAll, installExitHandlers, onCleanup, track } from './cleanup.js';
import { log, median, r0, table } from './format.js';
import { buildGateway, GatewayProcess, sleep } from './gateway-process.js';

// Scenario 9, glass to glass (issue 23 item 5): Chromium publishes a canvas that draws the
// wall clock as a block code (test/helpers/clock-publisher.ts: 640x360, 30 fps, default
// sender settings, a beep a second) over WHIP to the gateway run as its own process; each
// viewer decodes the code from the pictures it shows and compares it with the same
// machine's clock:
//   - ffmpeg opening /live/<name>.ts (the first viewer: it starts the output), with its
//     default probing, as ffplay and IPTV apps built on ffmpeg do;
//   - ffmpeg opening the HLS playlist (its hls demuxer's default live start, three
//     segments back), as a plain player starts;
//   - ffmpeg opening the SDP of an `rtp` output started over REST;
//   - the gateway's own watch page (/watch/<name>, hls.js) in Chromium, several runs, since
//     each run's latency is where its playback happened to start.
// One viewer at a time, each for BENCH_G2G_SECONDS after its first picture. The stream has
// been live WARMUP_SECONDS before the first viewer (the issue's /live case).
//
// Figures per viewer: latency median and p90 from STEADY_AFTER_MS after the first picture
// on; the first picture's own latency; time to first picture from the request (page open,
// ffmpeg start, or the rtp output's POST). For ffmpeg two latencies: "shown" paces the
// pictures as a player shows them (from its first picture at the stream's own rate, never
// skipping ahead: clock-samples.ts presentAtPace), "decoded" is when ffmpeg's decoder gave
// them out (it reads as fast as the input comes). Run alone: node --import tsx bench/glass-to-glass.ts
// BENCH_G2G_ONLY=live,hls,rtp,watch,whep picks viewers; BENCH_G2G_GATEWAY_ENV='{"HLS_SEGMENT_SECONDS":"0.5"}'
// starts the gateway with other settings. The machine's load average is printed at the
// start and the end: figures taken while other work runs are indicative.

const SECONDS = Number(process.env.BENCH_G2G_SECONDS ?? 20);
const WATCH_RUNS = Number(process.env.BENCH_G2G_WATCH_RUNS ?? 4);
const WHEP_RUNS = Number(process.env.BENCH_G2G_WHEP_RUNS ?? 4);
/** Only these viewers (comma-separated: live, hls, rtp, watch, whep); all by default. */
const ONLY = process.env.BENCH_G2G_ONLY?.split(',');
const runs = (viewer: string) => !ONLY || ONLY.includes(viewer);
const WARMUP_SECONDS = 6;
const NAME = 'g2g';
const GATEWAY_ENV = JSON.parse(process.env.BENCH_G2G_GATEWAY_ENV ?? '{}') as Record<string, string>;

export interface G2GReport {
  chromium: string;
  seconds: number;
  steadyAfterMs: number;
  /** What Chromium sent, read at the end. */
  publisher: ClockStats & { drawnPerSecond: number };
  viewers: ViewerFigures[];
  watchPage?: { runs: number; medianMs: number[]; lowMs: number; highMs: number };
  /** The watch page in real time (WebRTC, WHEP): latency medians per run, and the 201 -> first picture. */
  whep?: { runs: number; medianMs: number[]; lowMs: number; highMs: number; firstPictureAfterAnswerMs: number[] };
  /** The gateway's warnings and errors meanwhile (first few, distinct). */
  gatewayWarnings: string[];
  /** The machine's 1-minute load average at the start and the end (2 cores here: above 2, others were using it too). */
  load: { start: number; end: number; cores: number };
  /** Settings the gateway ran with besides its defaults (BENCH_G2G_GATEWAY_ENV). */
  gatewayEnv: Record<string, string>;
}

/** An even UDP port with the next one free too (RTP and RTCP), outside the gateway's 20000-29999 and Linux's ephemeral ports. */
async function freeRtpPort(): Promise<number> {
  const bind = (port: number) =>
    new Promise<dgram.Socket | undefined>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => (s.close(), resolve(undefined)));
      s.bind(port, '127.0.0.1', () => resolve(s));
    });
  for (let i = 0; i < 50; i++) {
    const port = 30000 + 2 * Math.floor(Math.random() * 1300);
    const [a, b] = [await bind(port), await bind(port + 1)];
    a?.close();
    b?.close();
    if (a && b) return port;
  }
  throw new Error('no free UDP port pair in 30000-32599');
}

async function waitLive(gw: GatewayProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const s = await gw.api<{ state: string; outputs: { id: string; state: string }[] }>(`/api/streams/${NAME}`).catch(() => undefined);
    if (s?.state === 'live' && s.outputs.some((o) => o.id === 'hls' && o.state === 'running')) return;
    await sleep(200);
  }
  throw new Error(`stream ${NAME} not live with HLS running after ${timeoutMs} ms`);
}

/** An rtp output to two local ports, ffmpeg on its SDP; the time to first picture counts from the POST. */
async function rtpViewer(gw: GatewayProcess): Promise<ViewerRun> {
  const [videoPort, audioPort] = [await freeRtpPort(), await freeRtpPort()];
  const postedAt = Date.now();
  const r = await fetch(`${gw.url}/api/streams/${NAME}/outputs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'rtp', host: '127.0.0.1', videoPort, audioPort }),
    signal: AbortSignal.timeout(10_000),
  });
  if (r.status !== 201) throw new Error(`POST rtp output: ${r.status} ${await r.text()}`);
  const { id } = (await r.json()) as { id: string };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'g2g-rtp-'));
  try {
    const sdp = await fetch(`${gw.url}/api/streams/${NAME}/outputs/${id}/sdp`, { signal: AbortSignal.timeout(10_000) }).then((x) => x.text());
    const file = path.join(dir, 'stream.sdp');
    await writeFile(file, sdp);
    const run = await ffmpegViewer({ viewer: 'rtp output (ffmpeg on its SDP)', input: file, inputArgs: ['-protocol_whitelist', 'file,udp,rtp'], seconds: SECONDS, onSpawn: (p) => track(p) });
    return { ...run, startedAt: postedAt };
  } finally {
    await fetch(`${gw.url}/api/streams/${NAME}/outputs/${id}`, { method: 'DELETE', signal: AbortSignal.timeout(10_000) }).then((x) => x.body?.cancel(), () => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

function tracked(browser: Browser): Browser {
  const undo = onCleanup(() => browser.close());
  browser.once('disconnected', undo);
  return browser;
}

/** One run: a viewer that fails is reported with its error, the others still run. */
async function measure(what: string, run: () => Promise<ViewerRun>): Promise<ViewerFigures> {
  log(`g2g: ${what}, ${SECONDS} s`);
  let f: ViewerFigures;
  try {
    f = figures(await run());
  } catch (e) {
    f = figures({ viewer: what, startedAt: 0, pictures: 0, samples: [], error: (e as Error).message });
  }
  log(`g2g: ${f.viewer}: ${f.error ? `FAILED ${f.error}` : `median ${r0(f.shown.medianMs)} ms, p90 ${r0(f.shown.p90Ms)} ms, first picture ${f.firstPictureMs} ms (${f.decoded}/${f.pictures} pictures read)`}`);
  return f;
}

export async function glassToGlassBench(): Promise<G2GReport> {
  const loadAtStart = os.loadavg()[0];
  const gw = await GatewayProcess.start(GATEWAY_ENV);
  const site = await startClockServer();
  let browser: Browser | undefined;
  try {
    browser = tracked(await launchChromium());
    const pub = await ClockPublisher.open(browser, site.url);
    const res = await pub.publish(`${gw.url}/whip/${NAME}`);
    if (res.status !== 201) throw new Error(`WHIP ${res.status}: ${res.body.slice(0, 200)}`);
    await pub.connected();
    await waitLive(gw);
    await sleep(Math.max(0, res.answeredAt + WARMUP_SECONDS * 1000 - Date.now()));
    const base = gw.url;
    const viewers: ViewerFigures[] = [];
    const spawned = { onSpawn: (p: Parameters<typeof track>[0]) => track(p) };
    if (runs('live')) viewers.push(await measure('/live (ffmpeg, first viewer)', () => ffmpegViewer({ viewer: '/live/<name>.ts (ffmpeg, first viewer)', input: `${base}/live/${NAME}.ts`, seconds: SECONDS, ...spawned })));
    if (runs('hls')) viewers.push(await measure('HLS (ffmpeg)', () => ffmpegViewer({ viewer: 'HLS playlist (ffmpeg, default live start)', input: `${base}/hls/${NAME}/index.m3u8`, seconds: SECONDS, ...spawned })));
    if (runs('rtp')) viewers.push(await measure('rtp output (ffmpeg)', () => rtpViewer(gw)));
    for (let i = 1; i <= (runs('watch') ? WATCH_RUNS : 0); i++) {
      viewers.push(await measure(`watch page ${i}/${WATCH_RUNS}`, () => watchVideoPage(browser!, { viewer: `watch page (hls.js), run ${i}`, url: `${base}/watch/${NAME}`, seconds: SECONDS })));
    }
    for (let i = 1; i <= (runs('whep') ? WHEP_RUNS : 0); i++) {
      viewers.push(await measure(`WHEP ${i}/${WHEP_RUNS}`, () => watchVideoPage(browser!, { viewer: `watch page real time (WebRTC, WHEP), run ${i}`, url: `${base}/watch/${NAME}?mode=webrtc`, seconds: SECONDS, initScripts: [whepPageShim()] })));
    }
    const stats = await pub.stats();
    const drawnPerSecond = Math.round((stats.drawn / ((Date.now() - res.answeredAt) / 1000)) * 10) / 10;
    await pub.stop().catch(() => undefined);
    if (pub.errors.length) log(`g2g: publisher page errors: ${pub.errors.slice(0, 3).join(' | ')}`);
    const watch = viewers.filter((v) => v.viewer.startsWith('watch page (hls.js)') && !v.error && v.shown.samples > 0);
    const whep = viewers.filter((v) => v.viewer.startsWith('watch page real time') && !v.error && v.shown.samples > 0);
    return {
      chromium: browser.version(),
      seconds: SECONDS,
      steadyAfterMs: STEADY_AFTER_MS,
      publisher: { ...stats, drawnPerSecond },
      viewers,
      gatewayWarnings: [...new Set(gw.problems().map((l) => l.msg))].slice(0, 5),
      load: { start: Math.round(loadAtStart * 10) / 10, end: Math.round(os.loadavg()[0] * 10) / 10, cores: os.cpus().length },
      gatewayEnv: GATEWAY_ENV,
      watchPage: watch.length
        ? { runs: watch.length, medianMs: watch.map((w) => r0(w.shown.medianMs)), lowMs: r0(Math.min(...watch.map((w) => w.shown.medianMs))), highMs: r0(Math.max(...watch.map((w) => w.shown.medianMs))) }
        : undefined,
      whep: whep.length
        ? {
            runs: whep.length,
            medianMs: whep.map((w) => r0(w.shown.medianMs)),
            lowMs: r0(Math.min(...whep.map((w) => w.shown.medianMs))),
            highMs: r0(Math.max(...whep.map((w) => w.shown.medianMs))),
            firstPictureAfterAnswerMs: whep.flatMap((w) => (w.firstPictureAfterAnswerMs !== undefined ? [w.firstPictureAfterAnswerMs] : [])),
          }
        : undefined,
    };
  } finally {
    await browser?.close().catch(() => undefined);
    await site.close();
    await gw.stop();
  }
}

export function printG2G(r: G2GReport): string[] {
  const ms = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : String(r0(x)));
  const p = r.publisher;
  const o = [
    `-- 9. Glass to glass: Chromium ${r.chromium} publishing a canvas clock, ${p.frameWidth ?? '?'}x${p.frameHeight ?? '?'} at ${p.framesPerSecond ?? '?'} fps sent (${p.drawnPerSecond} drawn/s, target ${r0((p.targetBitrate ?? NaN) / 1000)} kbit/s, limited by ${p.qualityLimitationReason ?? '?'}); ${r.seconds} s per viewer, one at a time (ms) --`,
    `machine: load average ${r.load.start} at the start, ${r.load.end} at the end, ${r.load.cores} cores${r.load.start > r.load.cores || r.load.end > r.load.cores ? ' (busy with other work: figures indicative)' : ''}${Object.keys(r.gatewayEnv).length ? `; gateway with ${JSON.stringify(r.gatewayEnv)}` : ''}`,
    table(
      ['viewer', 'read/pictures', 'first picture', 'latency at start', 'shown median', 'shown p90', 'decoded median', 'decoded p90'],
      r.viewers.map((v) =>
        v.error && !v.decoded
          ? [v.viewer, '-', `FAILED: ${v.error.slice(0, 160)}`, '', '', '', '', '']
          : [v.viewer, `${v.decoded}/${v.pictures}`, ms(v.firstPictureMs), ms(v.firstLatencyMs), ms(v.shown.medianMs), ms(v.shown.p90Ms), ms(v.decodedAt?.medianMs), ms(v.decodedAt?.p90Ms)],
      ),
    ),
  ];
  if (r.whep) o.push(`real time (WHEP) on the watch page: median ${r.whep.lowMs}-${r.whep.highMs} ms over ${r.whep.runs} runs (${r.whep.medianMs.join(', ')}); median of the runs ${r0(median(r.whep.medianMs))} ms; first picture ${r.whep.firstPictureAfterAnswerMs.join(', ')} ms after the 201`);
  if (r.watchPage) o.push(`watch page: median ${r.watchPage.lowMs}-${r.watchPage.highMs} ms over ${r.watchPage.runs} runs (${r.watchPage.medianMs.join(', ')}); median of the runs ${r0(median(r.watchPage.medianMs))} ms`);
  o.push(`(first picture: from the request (page opened, ffmpeg started, rtp output POSTed) to the first picture shown or decoded; latency at start: that picture's;`);
  o.push(` median/p90 from ${r.steadyAfterMs / 1000} s after the first picture; shown: Chromium when it presents a picture (requestVideoFrameCallback), ffmpeg paced as a`);
  o.push(` player shows them (at the stream's own rate from its first picture, never skipping ahead); decoded: when ffmpeg's decoder gave them out, a player that shows each at once)`);
  if (r.gatewayWarnings.length) o.push(`gateway warnings: ${r.gatewayWarnings.join(' | ').slice(0, 400)}`);
  // An error after some pictures (ffmpeg ending early) keeps the figures above, and says so here.
  for (const v of r.viewers) if (v.notes?.length || (v.error && v.decoded)) o.push(`${v.viewer}: ${[v.decoded ? v.error : undefined, ...(v.notes ?? [])].filter(Boolean).join(' | ').slice(0, 300)}`);
  return o;
}

// Run on its own: node --import tsx bench/glass-to-glass.ts (BENCH_SKIP_BUILD=1 to use dist/ as it is).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  installExitHandlers();
  const main = async () => {
    if (!process.env.BENCH_SKIP_BUILD) buildGateway();
    const report = await glassToGlassBench();
    process.stdout.write(['', ...printG2G(report), '', 'JSON:', JSON.stringify(report), ''].join('\n'));
  };
  main().then(
    async () => (await cleanupAll(), process.exit(0)),
    async (e: unknown) => {
      process.stderr.write(`glass-to-glass failed: ${(e as Error)?.stack ?? String(e)}\n`);
      await cleanupAll();
      process.exit(1);
    },
  );
}
