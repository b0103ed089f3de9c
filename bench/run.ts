import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { cleanupAll, installExitHandlers } from './cleanup.js';
import { installSrtpKeyCache } from '../src/werift/srtp-key-cache.js';
import { buildGateway, GatewayProcess, killTree, sleep } from './gateway-process.js';
import { encodeClip, Replay, ReplayClock, type Clip, type EncodeOptions } from './media.js';
import { watchEvents, type SeenEvent } from './events.js';
import { allProcesses, procStat, sampleTree, sumChildren, topProcesses, type ProcStat, systemBusyPercent, systemCpu, treeCpuPercent, udpDrops, udpDropsDelta, type TreeSample } from './proc.js';
import { liveEncoder, publish, type BenchPublisher } from './publisher.js';
import { log, mb, median, r0, r1, table } from './format.js';
import { outputsBench, printOutputs, type OutputsReport } from './outputs.js';
import { chromiumBench, printChromium, type ChromiumReport } from './chromium.js';
import { authBench, printAuth, type AuthReport } from './auth.js';
import { janusAvailable, janusBench, printJanus, type JanusRow } from './janus.js';
import { printTranscode, transcodeBench, type TranscodeReport } from './transcode.js';
import { glassToGlassBench, printG2G, type G2GReport } from './glass-to-glass.js';
import { printWhep, whepBench, type WhepReport } from './whep.js';
import { compositeBench, printComposite, type CompositeReport } from './composite.js';

// npm run bench: start-up latency (WHIP 201 -> connected -> first HLS segment) and the cost
// of N concurrent 720p30 publishers (CPU, memory, packets, HLS health) for the gateway run
// as its own process from dist/. Everything stays on 127.0.0.1. Prints a table and one
// JSON line. Then (bench/outputs.ts) the cost of each output type and how many mpegts-http
// viewers one stream serves. Settings (environment): BENCH_LOADS=1,10,30  BENCH_SECONDS=20
// BENCH_OUTPUTS=0 (skip the output scenario) BENCH_OUTPUT_SECONDS=8 BENCH_VIEWERS=1,10,50,100,200,400,800
// BENCH_STARTUP_RUNS=5  BENCH_SKIP_BUILD=1 (use the existing dist/)  BENCH_CPU_PROF=DIR (write
// V8 CPU profiles of the load-test gateways into DIR/N<load>/, one per thread, for chrome://inspect or speedscope)
// BENCH_GATEWAY_NODE_ARGS="..." (extra node options for the gateway process)
// BENCH_PLAIN_CRYPTO=1 (do not give the publishers' SRTP KeyObjects; see src/webrtc/srtp-keys.ts)
// BENCH_CHROMIUM=0 (skip scenario 5)  BENCH_AUTH=0 (skip scenario 6)  BENCH_AUTH_REQUESTS=2000
// BENCH_JANUS=0 (skip scenario 7, the Janus anchor at the loads of scenario 2; needs janus and root).
// BENCH_HLS_AUDIO=copy (scenario 2's HLS keeps the Opus in fMP4 segments instead of encoding AAC).
// BENCH_TRANSCODE=0 (skip scenario 8, the VP8 -> H.264 transcoder).
// BENCH_G2G=0 (skip scenario 9, glass to glass from a Chromium canvas clock to ffmpeg and the watch page)
// BENCH_COMPOSITE=0 (skip scenario 10, composites of 2, 4 and 9: compositor CPU, added delay, how many fit)
// BENCH_G2G_SECONDS=20 (per viewer) BENCH_G2G_WATCH_RUNS=4.

const LOADS = (process.env.BENCH_LOADS ?? '1,10,30').split(',').map(Number).filter((n) => n > 0);
const STEADY_SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const STARTUP_RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 5);
/** Extra node options for the gateway process (experiments, e.g. "--import ./patch.mjs"). */
const GATEWAY_NODE_ARGS = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** Scenario 2's HLS: AAC in MPEG-TS segments (the default), or Opus copied into fMP4. */
const HLS_AUDIO: 'aac' | 'copy' = process.env.BENCH_HLS_AUDIO === 'copy' ? 'copy' : 'aac';
const HLS_ENV: Record<string, string> = HLS_AUDIO === 'copy' ? { HLS_SEGMENT_FORMAT: 'fmp4', HLS_AUDIO: 'copy' } : {};
const WARMUP_SECONDS = 3;
const CONNECT_CONCURRENCY = 5;
const HLS_POLL_MS = 20;
const STARTUP_GOAL_MS = 1500;

const CLIP: EncodeOptions = { width: 1280, height: 720, fps: 30, videoKbps: 2500, seconds: 10, gop: 30 };
const LIVE: EncodeOptions = { ...CLIP, seconds: 30 };

// ---------------------------------------------------------------------------- helpers

/** Share of all cores busy over one second, before anything starts (other users of the machine). */
async function machineBusy(ms = 1000): Promise<number> {
  const a = systemCpu();
  await sleep(ms);
  return r1(systemBusyPercent(a, systemCpu()));
}

function environment() {
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  let ffmpeg = 'unknown';
  try {
    ffmpeg = /ffmpeg version (\S+)/.exec(execFileSync('ffmpeg', ['-hide_banner', '-version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch {
    // reported as unknown
  }
  let nproc = os.availableParallelism();
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    // os value
  }
  return {
    date: new Date().toISOString(),
    nproc,
    cpuModel,
    memGiB: r1(os.totalmem() / 2 ** 30),
    node: process.version,
    ffmpeg,
    loadavgAtStart: os.loadavg().map(r1),
    gatewayNodeArgs: GATEWAY_NODE_ARGS.join(' '),
  };
}

interface Playlist {
  mediaSequence: number;
  segments: string[];
  firstDuration?: number;
}

async function playlist(gw: GatewayProcess, name: string): Promise<Playlist | undefined> {
  try {
    const r = await fetch(`${gw.url}/hls/${name}/index.m3u8`, { signal: AbortSignal.timeout(5000) });
    if (!r.ok) {
      await r.body?.cancel();
      return undefined;
    }
    const text = await r.text();
    const lines = text.split('\n').map((l) => l.trim());
    const segments = lines.filter((l) => l && !l.startsWith('#'));
    const seq = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text);
    const dur = /#EXTINF:([\d.]+)/.exec(text);
    return { mediaSequence: seq ? Number(seq[1]) : 0, segments, firstDuration: dur ? Number(dur[1]) : undefined };
  } catch {
    return undefined;
  }
}

interface StreamInfo {
  name: string;
  session: string;
  state: string;
  tracks: { kind: string; packets: number; bytes: number; lost: number; keyframes: number; bitrateKbps: number }[];
  outputs: { id: string; type: string; state: string; restarts: number; error?: string }[];
}

async function pool<T, R>(items: T[], concurrency: number, fn: (t: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await fn(items[i]) };
      } catch (e) {
        results[i] = { status: 'rejected', reason: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

function problemsOf(gw: GatewayProcess): string[] {
  const lines = [...gw.problems().map((l) => `${l.level >= 50 ? 'ERROR' : 'WARN'} ${l.msg} ${extraFields(l.raw)}`.trim()), ...gw.otherOutput];
  return lines;
}

function extraFields(raw: string): string {
  try {
    const j = JSON.parse(raw) as Record<string, unknown>;
    for (const k of ['level', 'time', 'pid', 'hostname', 'msg', 'session']) delete j[k];
    const s = JSON.stringify(j);
    return s === '{}' ? '' : s.slice(0, 300);
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------- start-up

interface StartupRun {
  whipMs: number;
  connectedMs?: number;
  firstMediaMs?: number;
  firstSegmentMs?: number;
  firstSegmentSeconds?: number;
  error?: string;
}

async function startupBench(gw: GatewayProcess, mode: 'encoder' | 'replay', clip: Clip, runs: number): Promise<StartupRun[]> {
  const out: StartupRun[] = [];
  const clock = new ReplayClock();
  try {
    for (let i = 0; i < runs; i++) {
      const name = `startup-${mode}-${i + 1}`;
      const pub = await publish(gw.url, name);
      const run: StartupRun = { whipMs: pub.answeredAt - pub.postedAt };
      if (pub.status !== 201) {
        out.push({ ...run, error: `WHIP ${pub.status}: ${pub.errorText ?? ''}`.slice(0, 200) });
        continue;
      }
      let stopMedia = () => {};
      let firstMediaAt: () => number | undefined;
      if (mode === 'encoder') {
        const enc = await liveEncoder(pub, LIVE);
        void pub.connected.then(() => enc.start(), () => undefined);
        stopMedia = enc.stop;
        firstMediaAt = enc.firstPacketAt;
      } else {
        let first: number | undefined;
        const replay = new Replay(clip, {
          video: (b) => {
            first ??= performance.now();
            pub.video.writeRtp(b);
          },
          audio: (b) => pub.audio.writeRtp(b),
        });
        void pub.connected.then(() => {
          replay.start();
          clock.add(replay);
        }, () => undefined);
        stopMedia = () => clock.remove(replay);
        firstMediaAt = () => first;
      }
      try {
        const deadline = pub.answeredAt + 15_000;
        let pl: Playlist | undefined;
        while (performance.now() < deadline) {
          pl = await playlist(gw, name);
          if (pl && pl.segments.length > 0) {
            run.firstSegmentMs = performance.now() - pub.answeredAt;
            run.firstSegmentSeconds = pl.firstDuration;
            break;
          }
          await sleep(HLS_POLL_MS);
        }
        if (run.firstSegmentMs === undefined) run.error = 'no HLS segment within 15 s';
        if (pub.connectedAt) run.connectedMs = pub.connectedAt - pub.answeredAt;
        else run.error = 'publisher never connected';
        const fm = firstMediaAt();
        if (fm !== undefined) run.firstMediaMs = fm - pub.answeredAt;
      } finally {
        stopMedia();
        await pub.close();
      }
      out.push(run);
      log(`start-up (${mode}) ${i + 1}/${runs}: connected ${fmtMs(run.connectedMs)}, first media ${fmtMs(run.firstMediaMs)}, first segment ${fmtMs(run.firstSegmentMs)}${run.error ? ` (${run.error})` : ''}`);
      await sleep(500);
    }
  } finally {
    clock.stop();
  }
  return out;
}

function fmtMs(x: number | undefined): string {
  return x === undefined ? '-' : `${r0(x)} ms`;
}

function summarise(runs: StartupRun[]) {
  const pick = (k: keyof StartupRun) => runs.map((r) => r[k]).filter((v): v is number => typeof v === 'number');
  const stat = (k: keyof StartupRun) => {
    const v = pick(k);
    return { median: r0(median(v)), max: v.length ? r0(Math.max(...v)) : NaN, min: v.length ? r0(Math.min(...v)) : NaN };
  };
  const seg = pick('firstSegmentMs');
  return {
    runs: runs.length,
    failures: runs.filter((r) => r.error).length,
    whipMs: stat('whipMs'),
    connectedMs: stat('connectedMs'),
    firstMediaMs: stat('firstMediaMs'),
    firstSegmentMs: stat('firstSegmentMs'),
    withinGoal: seg.filter((x) => x <= STARTUP_GOAL_MS).length,
    raw: runs.map((r) => ({ ...r, whipMs: r0(r.whipMs), connectedMs: r.connectedMs && r0(r.connectedMs), firstMediaMs: r.firstMediaMs && r0(r.firstMediaMs), firstSegmentMs: r.firstSegmentMs && r0(r.firstSegmentMs) })),
  };
}

// ---------------------------------------------------------------------------- load

interface Snapshot {
  tree: TreeSample;
  streams: StreamInfo[];
  benchCpu: NodeJS.CpuUsage;
  sys: ReturnType<typeof systemCpu>;
  sent: number;
  sentBytes: number;
  playlists: Map<string, Playlist | undefined>;
  drops: { gateway: Map<number, number>; ffmpeg: Map<number, number>; bench: Map<number, number> };
  procs: Map<number, ProcStat>;
}

async function snapshot(gw: GatewayProcess, replays: Replay[], names: string[]): Promise<Snapshot> {
  // The /proc readings and counters first, at one instant, then the gateway's own counters
  // (one request), then the playlists (not timing-critical; 30 of them take a while under load).
  const tree = sampleTree(gw.pid, true);
  const drops = { gateway: udpDrops([gw.pid]), ffmpeg: udpDrops([...tree.children.keys()]), bench: udpDrops([process.pid]) };
  const procs = allProcesses();
  const benchCpu = process.cpuUsage();
  const sys = systemCpu();
  const sent = replays.reduce((s, r) => s + r.sent, 0);
  const sentBytes = replays.reduce((s, r) => s + r.sentBytes, 0);
  const streams = await gw.api<StreamInfo[]>('/api/streams');
  const playlists = new Map<string, Playlist | undefined>();
  await Promise.all(names.map(async (n) => playlists.set(n, await playlist(gw, n))));
  return { tree, drops, procs, benchCpu, sys, sent, sentBytes, streams, playlists };
}

const sumTracks = (streams: StreamInfo[], k: 'packets' | 'bytes' | 'lost') => streams.reduce((s, x) => s + x.tracks.reduce((t, tr) => t + tr[k], 0), 0);
/** Growth of a track counter over the window, for the sessions alive at both ends (a stream that ended has no end value). */
const tracksDelta = (a: StreamInfo[], b: StreamInfo[], k: 'packets' | 'bytes' | 'lost') => {
  const both = (x: StreamInfo[], y: StreamInfo[]) => x.filter((s) => y.some((o) => o.session === s.session));
  return sumTracks(both(b, a), k) - sumTracks(both(a, b), k);
};

async function loadBench(n: number, clip: Clip, problems: { phase: string; lines: string[] }[]) {
  log(`load N=${n}: starting gateway`);
  const prof = process.env.BENCH_CPU_PROF;
  const gw = await GatewayProcess.start(HLS_ENV, [...GATEWAY_NODE_ARGS, ...(prof ? ['--cpu-prof', '--cpu-prof-dir', `${prof}/N${n}`] : [])]);
  const feed = await watchEvents(gw.url);
  const clock = new ReplayClock();
  const pubs: BenchPublisher[] = [];
  const replays: Replay[] = [];
  try {
    await sleep(1500);
    const baseline = sampleTree(gw.pid, true);
    const names = Array.from({ length: n }, (_, i) => `load${n}-${String(i + 1).padStart(2, '0')}`);
    const t0 = performance.now();
    const results = await pool(names, CONNECT_CONCURRENCY, async (name) => {
      const pub = await publish(gw.url, name);
      if (pub.status !== 201) throw new Error(`${name}: WHIP ${pub.status} ${pub.errorText ?? ''}`);
      pubs.push(pub);
      await pub.connected;
      const replay = new Replay(clip, pub.direct());
      replays.push(replay);
      replay.start();
      clock.add(replay);
      return pub;
    });
    const connectErrors = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => String((r.reason as Error)?.message ?? r.reason));
    const connected = results.length - connectErrors.length;
    const connectSeconds = (performance.now() - t0) / 1000;
    log(`load N=${n}: ${connected}/${n} connected in ${connectSeconds.toFixed(1)} s${connectErrors.length ? ` (${connectErrors[0]})` : ''}; waiting for HLS`);

    // Every stream's HLS output running (bounded).
    const hlsDeadline = performance.now() + 30_000;
    let running = 0;
    while (performance.now() < hlsDeadline) {
      if (!gw.running) throw new Error('gateway exited while the outputs were starting');
      const streams = await gw.api<StreamInfo[]>('/api/streams').catch(() => [] as StreamInfo[]);
      running = streams.filter((s) => s.outputs.some((o) => o.type === 'hls' && o.state === 'running')).length;
      if (running >= connected) break;
      await sleep(500);
    }
    const hlsReadySeconds = (performance.now() - t0) / 1000;
    log(`load N=${n}: ${running}/${connected} HLS outputs running after ${hlsReadySeconds.toFixed(1)} s; warm-up ${WARMUP_SECONDS} s, then ${STEADY_SECONDS} s steady`);
    await sleep(WARMUP_SECONDS * 1000);

    const a = await snapshot(gw, replays, names);
    const eventsBefore = feed.events.length;
    for (const r of replays) r.maxLagMs = 0;
    const rssSeries: { t: number; gateway: number; ffmpeg: number }[] = [];
    const windowEnd = performance.now() + STEADY_SECONDS * 1000;
    while (performance.now() < windowEnd) {
      await sleep(Math.min(2000, Math.max(0, windowEnd - performance.now())));
      const s = sampleTree(gw.pid);
      rssSeries.push({ t: r1((s.at - a.tree.at) / 1000), gateway: r1(mb(s.rss)), ffmpeg: r1(mb(sumChildren(s, 'rss'))) });
      if (!gw.running) throw new Error(`gateway exited during the load test (${gw.exitDescription})`);
    }
    const b = await snapshot(gw, replays, names);

    const secs = (b.tree.at - a.tree.at) / 1000;
    const cpu = treeCpuPercent(a.tree, b.tree);
    const benchCpu = (100 * (b.benchCpu.user + b.benchCpu.system - a.benchCpu.user - a.benchCpu.system)) / 1e6 / secs;
    const sysBusy = systemBusyPercent(a.sys, b.sys);
    const nominalPps = clip.packetRate * connected;
    const sentPps = (b.sent - a.sent) / secs;
    const recvPps = tracksDelta(a.streams, b.streams, 'packets') / secs;
    const recvMbps = (tracksDelta(a.streams, b.streams, 'bytes') * 8) / secs / 1e6;
    const lost = tracksDelta(a.streams, b.streams, 'lost');
    const maxLagMs = Math.max(0, ...replays.map((r) => r.maxLagMs));
    const hlsRunning = b.streams.filter((s) => s.outputs.some((o) => o.type === 'hls' && o.state === 'running')).length;
    const restarts = b.streams.reduce((s, x) => s + x.outputs.reduce((t, o) => t + o.restarts, 0), 0);
    let hlsAdvancing = 0;
    const stalled: string[] = [];
    for (const name of names) {
      const pa = a.playlists.get(name);
      const pb = b.playlists.get(name);
      const end = (p: Playlist | undefined) => (p ? `seq ${p.mediaSequence}+${p.segments.length}` : 'no playlist');
      if (pa && pb && pb.segments.length && pb.mediaSequence + pb.segments.length > pa.mediaSequence + pa.segments.length) hlsAdvancing++;
      else stalled.push(`${name} (${end(pa)} -> ${end(pb)})`);
    }
    const drops = {
      gateway: udpDropsDelta(a.drops.gateway, b.drops.gateway),
      ffmpeg: udpDropsDelta(a.drops.ffmpeg, b.drops.ffmpeg),
      bench: udpDropsDelta(a.drops.bench, b.drops.bench),
    };
    const live = new Set(b.streams.map((s) => s.name));
    const notRunning = [
      ...names.filter((x) => !live.has(x)).map((x) => `${x}: stream gone`),
      ...b.streams.flatMap((s) => s.outputs.filter((o) => o.type === 'hls' && o.state !== 'running').map((o) => `${s.name}: hls ${o.state}${o.error ? ` (${o.error.slice(0, 120)})` : ''}`)),
    ];
    // Publishers whose connection left 'connected' after connecting (ICE consent, DTLS...).
    const unstable = pubs
      .filter((p) => p.connectedAt !== undefined && p.pc.connectionState !== 'connected')
      .map((p) => `${p.name}: ${p.pc.connectionState} [${p.states.filter((x) => !/:(new|checking|connecting)$/.test(x)).join(', ')}]`);
    const summary = (list: SeenEvent[]) => [...new Set(list.filter((e) => e.type !== 'stream.started' && e.type !== 'output.started').map((e) => `${e.type}${e.reason ? `: ${e.reason}` : ''}${e.output?.error ? `: ${e.output.error.slice(0, 120)}` : ''}`))];
    const eventCounts = (list: SeenEvent[]) => list.reduce<Record<string, number>>((acc, e) => ((acc[e.type] = (acc[e.type] ?? 0) + 1), acc), {});
    const windowEvents = feed.events.slice(eventsBefore);
    const ffmpegRss = sumChildren(b.tree, 'rss');
    const ffmpegPss = sumChildren(b.tree, 'pss');
    const gwGrowth = rssSeries.length > 1 ? rssSeries[rssSeries.length - 1].gateway - rssSeries[0].gateway : 0;
    const notes: string[] = [];
    if (sysBusy > 90) notes.push(`machine saturated: all ${os.availableParallelism()} cores ${r0(sysBusy)}% busy`);
    if (sentPps < nominalPps * 0.97) notes.push(`publishers could not keep pace: sent ${r0(sentPps)} of ${r0(nominalPps)} pkt/s`);
    if (maxLagMs > 200) notes.push(`publisher pacing lag up to ${r0(maxLagMs)} ms`);
    if (recvPps < sentPps * 0.97) notes.push(`gateway received ${r0(recvPps)} of ${r0(sentPps)} pkt/s sent (${r1(100 - (100 * recvPps) / sentPps)}% short)`);
    const lostPps = lost / secs;
    if (lost > 0) notes.push(`gateway gave up on ${lost} packets as lost (${r1((100 * lostPps) / Math.max(1, sentPps))}% of those sent)`);
    if (hlsRunning < connected || hlsAdvancing < connected) notes.push(`HLS: ${hlsRunning} running, ${hlsAdvancing} advancing, of ${connected}${stalled.length ? `; not advancing: ${stalled.slice(0, 3).join(', ')}` : ''}`);
    if (restarts > 0) notes.push(`${restarts} ffmpeg restarts`);
    if (drops.gateway > 0) notes.push(`kernel dropped ${drops.gateway} datagrams (${r1((100 * drops.gateway) / secs / Math.max(1, sentPps))}% of those sent) at the gateway's UDP sockets: it did not read them in time (receive buffer full); the gap to "gw received" is publisher retransmissions (NACK)`);
    if (drops.ffmpeg > 0) notes.push(`kernel dropped ${drops.ffmpeg} datagrams at ffmpeg's RTP input sockets`);
    if (drops.bench > 0) notes.push(`kernel dropped ${drops.bench} datagrams at the publishers' sockets`);
    if (unstable.length) notes.push(`publisher connections lost: ${unstable.slice(0, 3).join('; ')}${unstable.length > 3 ? ` (+${unstable.length - 3})` : ''}`);
    if (notRunning.length) notes.push(`not running at the end: ${notRunning.slice(0, 3).join('; ')}${notRunning.length > 3 ? ` (+${notRunning.length - 3})` : ''}`);
    const stops = summary(windowEvents);
    if (stops.length) notes.push(`events in the window: ${stops.slice(0, 3).join('; ')}`);

    const result = {
      n,
      connected,
      connectErrors: connectErrors.slice(0, 3),
      connectSeconds: r1(connectSeconds),
      hlsReadySeconds: r1(hlsReadySeconds),
      windowSeconds: r1(secs),
      gateway: {
        cpuPercent: r1(cpu.self),
        rssMB: r1(mb(b.tree.rss)),
        baselineRssMB: r1(mb(baseline.rss)),
        rssGrowthInWindowMB: r1(gwGrowth),
      },
      ffmpeg: { processes: cpu.childCount, cpuPercent: r1(cpu.children), rssMB: r1(mb(ffmpegRss)), pssMB: r1(mb(ffmpegPss)) },
      perStream: {
        gatewayCpuPercent: r1(cpu.self / Math.max(1, connected)),
        ffmpegCpuPercent: r1(cpu.children / Math.max(1, connected)),
        gatewayMemMB: r1(mb(b.tree.rss - baseline.rss) / Math.max(1, connected)),
        ffmpegRssMB: r1(mb(ffmpegRss) / Math.max(1, connected)),
        ffmpegPssMB: r1(mb(ffmpegPss) / Math.max(1, connected)),
      },
      packets: { nominalPerSec: r0(nominalPps), sentPerSec: r0(sentPps), receivedPerSec: r0(recvPps), receivedMbps: r1(recvMbps), lost, publisherMaxLagMs: r0(maxLagMs) },
      hls: { running: hlsRunning, advancing: hlsAdvancing, restarts, notRunning, notAdvancing: stalled },
      udpDrops: drops,
      publishersLost: unstable,
      events: { wholeRun: eventCounts(feed.events), inWindow: eventCounts(windowEvents), problems: summary(feed.events).slice(0, 10) },
      bench: { cpuPercent: r1(benchCpu) },
      system: {
        busyPercent: r1(sysBusy),
        otherCpuPercent: r1(sysBusy * os.availableParallelism() - cpu.self - cpu.children - benchCpu),
        busiestOthers: topProcesses(a.procs, b.procs, secs, new Set([gw.pid, process.pid])).map((p) => `${p.comm}(${p.pid}) ${p.cpuPercent}%`),
      },
      rssSeries,
      saturated: sysBusy > 90 || sentPps < nominalPps * 0.97 || recvPps < sentPps * 0.97 || lostPps > sentPps * 0.01 || drops.gateway / secs > sentPps * 0.01,
      notes,
    };
    log(`load N=${n}: gateway ${result.gateway.cpuPercent}% CPU ${result.gateway.rssMB} MB, ffmpeg ${result.ffmpeg.cpuPercent}% ${result.ffmpeg.rssMB} MB, bench ${result.bench.cpuPercent}%, recv ${result.packets.receivedPerSec}/${result.packets.sentPerSec} pkt/s, HLS ${hlsRunning}/${connected}`);
    return { result, gw };
  } catch (e) {
    const why = gw.running ? '' : `\ngateway exited (${gw.exitDescription}); its last output:\n${gw.tail()}`;
    problems.push({ phase: `load N=${n} (failed)`, lines: problemsOf(gw) });
    throw new Error(`load N=${n}: ${(e as Error).message}${why}`);
  } finally {
    // The gateway is stopped while every publisher is still sending (a shutdown under load:
    // each ffmpeg finishes its playlist), then the publishers go.
    feed.close();
    const ffmpegPids = gw.running ? [...sampleTree(gw.pid).children.keys()] : [];
    const stop = await gw.stop();
    clock.stop();
    await Promise.race([Promise.all(pubs.map((p) => p.close())), sleep(15_000)]);
    const orphans = ffmpegPids.filter((pid) => procStat(pid)?.comm === 'ffmpeg');
    for (const pid of orphans) killTree(pid);
    log(`load N=${n}: gateway stopped in ${r0(stop.ms)} ms with ${ffmpegPids.length} ffmpeg running${stop.clean ? '' : ' (not clean)'}${orphans.length ? `, ${orphans.length} ffmpeg left behind (killed)` : ''}`);
    stopTimes.set(n, { ms: r0(stop.ms), clean: stop.clean, orphans: orphans.length });
  }
}

type LoadEntry = Awaited<ReturnType<typeof loadBench>>['result'] & { gatewayStopMs?: number; gatewayStopClean?: boolean; ffmpegLeftAfterStop?: number };

const stopTimes = new Map<number, { ms: number; clean: boolean; orphans: number }>();

// ---------------------------------------------------------------------------- main

/** A scenario that `<flag>=0` skips; a failure is reported, not fatal, and cleaned up after. */
async function optional<T>(name: string, flag: string, what: string, run: () => Promise<T>): Promise<{ report?: T; error?: string }> {
  if (process.env[flag] === '0') return {};
  log(what);
  try {
    return { report: await run() };
  } catch (e) {
    const error = (e as Error).message;
    log(`${name} failed: ${error}`);
    await cleanupAll();
    return { error };
  }
}

async function main(): Promise<void> {
  installExitHandlers();
  if (!process.env.BENCH_PLAIN_CRYPTO) installSrtpKeyCache();
  const started = performance.now();
  const env = { ...environment(), machineBusyBeforeStart: await machineBusy() };
  log(`${env.date}  ${env.nproc} x ${env.cpuModel}  node ${env.node}  ffmpeg ${env.ffmpeg}  machine ${env.machineBusyBeforeStart}% busy before start`);
  if (env.machineBusyBeforeStart > 20) log('warning: the machine is already busy; CPU figures will be disturbed (see "other CPU%")');
  if (process.env.BENCH_SKIP_BUILD) log('BENCH_SKIP_BUILD: using the existing dist/');
  else {
    log('building the gateway (npx tsc -p tsconfig.json)');
    buildGateway();
  }
  log(`encoding the ${CLIP.width}x${CLIP.height}@${CLIP.fps} clip once`);
  const clip = await encodeClip(CLIP);
  log(`clip: ${clip.description}, video ${r0(clip.videoKbps)} kbit/s, audio ${r0(clip.audioKbps)} kbit/s, ${r0(clip.packetRate)} pkt/s, ${clip.keyframes} keyframes`);

  const problems: { phase: string; lines: string[] }[] = [];
  log(`start-up latency: ${STARTUP_RUNS} runs with a live encoder, ${STARTUP_RUNS} with the replayed clip`);
  let startupEncoder: StartupRun[] = [];
  let startupReplay: StartupRun[] = [];
  if (STARTUP_RUNS > 0) {
    const sgw = await GatewayProcess.start({}, GATEWAY_NODE_ARGS);
    try {
      startupEncoder = await startupBench(sgw, 'encoder', clip, STARTUP_RUNS);
      startupReplay = await startupBench(sgw, 'replay', clip, STARTUP_RUNS);
    } finally {
      problems.push({ phase: 'start-up', lines: problemsOf(sgw) });
      await sgw.stop();
    }
  }

  const loads: LoadEntry[] = [];
  const failures: { n: number; error: string }[] = [];
  for (const n of LOADS) {
    // One retry with a fresh gateway: a failed attempt is reported, not silently dropped.
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        const { result, gw } = await loadBench(n, clip, problems);
        problems.push({ phase: `load N=${n}`, lines: problemsOf(gw) });
        loads.push({ ...result, gatewayStopMs: stopTimes.get(n)?.ms, gatewayStopClean: stopTimes.get(n)?.clean, ffmpegLeftAfterStop: stopTimes.get(n)?.orphans });
        break;
      } catch (e) {
        const error = (e as Error).message;
        failures.push({ n, error: `attempt ${attempt}: ${error}` });
        log(`load N=${n} attempt ${attempt} failed: ${error}`);
        await cleanupAll(); // anything the failed attempt left behind
      }
    }
  }

  const { report: outputs, error: outputsError } = await optional('outputs', 'BENCH_OUTPUTS', 'output types and mpegts-http viewers', () => outputsBench(clip, GATEWAY_NODE_ARGS));
  const { report: chromium, error: chromiumError } = await optional('chromium', 'BENCH_CHROMIUM', 'Chromium publishing: start-up, ramp, shaped uplink, keyframe policy', () => chromiumBench());
  const { report: auth, error: authError } = await optional('auth', 'BENCH_AUTH', 'cost of checking credentials', () => authBench(GATEWAY_NODE_ARGS));
  const { report: transcode, error: transcodeError } = await optional('transcode', 'BENCH_TRANSCODE', 'the VP8 -> H.264 transcoder at 360p, 720p, 1080p', () => transcodeBench(log));
  const { report: g2g, error: g2gError } = await optional('g2g', 'BENCH_G2G', 'glass to glass: a Chromium canvas clock to /live, HLS, rtp (ffmpeg) and the watch page (HLS and real time)', () => glassToGlassBench());
  const { report: whep, error: whepError } = await optional('whep', 'BENCH_WHEP', 'WHEP viewers: CPU per viewer at 1, 10, 50 viewers of one 720p stream', () => whepBench());
  const { report: composite, error: compositeError } = await optional('composite', 'BENCH_COMPOSITE', 'composites of 2, 4 and 9 participants: compositor CPU, added delay, how many 4-person composites fit', () => compositeBench(clip));
  const janusLoads = loads.map((l) => l.n);
  const janusMissing = janusAvailable();
  const { report: janus, error: janusError } = janusMissing
    ? { report: undefined, error: janusMissing }
    : await optional('janus', 'BENCH_JANUS', `anchor: the same load into Janus (N=${janusLoads.join(',')})`, () => janusBench(janusLoads, clip, WARMUP_SECONDS, STEADY_SECONDS));

  const report = {
    ...env,
    clip: { description: clip.description, videoKbps: r0(clip.videoKbps), audioKbps: r0(clip.audioKbps), packetsPerSec: r0(clip.packetRate), loopSeconds: clip.seconds },
    startup: { goalMs: STARTUP_GOAL_MS, segmentSeconds: 1, encoder: summarise(startupEncoder), replay: summarise(startupReplay) },
    hlsAudio: HLS_AUDIO,
    load: loads,
    loadFailures: failures,
    gatewayLog: problems.map((p) => ({ phase: p.phase, warnings: p.lines.length, samples: [...new Set(p.lines.map((l) => l.slice(0, 200)))].slice(0, 5) })),
    outputs,
    outputsError,
    chromium,
    chromiumError,
    auth,
    authError,
    janus,
    janusError,
    transcode,
    transcodeError,
    g2g,
    g2gError,
    whep,
    whepError,
    composite,
    compositeError,
    benchSeconds: r0((performance.now() - started) / 1000),
  };
  print(report);
}

function print(report: {
  date: string;
  nproc: number;
  cpuModel: string;
  memGiB: number;
  node: string;
  ffmpeg: string;
  loadavgAtStart: number[];
  machineBusyBeforeStart: number;
  gatewayNodeArgs: string;
  clip: { description: string; videoKbps: number; audioKbps: number; packetsPerSec: number };
  startup: { goalMs: number; encoder: ReturnType<typeof summarise>; replay: ReturnType<typeof summarise> };
  hlsAudio: 'aac' | 'copy';
  load: LoadEntry[];
  loadFailures: { n: number; error: string }[];
  gatewayLog: { phase: string; warnings: number; samples: string[] }[];
  outputs?: OutputsReport;
  outputsError?: string;
  chromium?: ChromiumReport;
  chromiumError?: string;
  auth?: AuthReport;
  authError?: string;
  janus?: JanusRow[];
  janusError?: string;
  transcode?: TranscodeReport;
  transcodeError?: string;
  g2g?: G2GReport;
  g2gError?: string;
  whep?: WhepReport;
  whepError?: string;
  composite?: CompositeReport;
  compositeError?: string;
  benchSeconds: number;
}): void {
  const o: string[] = [];
  o.push('');
  o.push('== webrtc-rtp-gateway benchmark ==');
  o.push(`date ${report.date} | nproc ${report.nproc} | CPU ${report.cpuModel} | RAM ${report.memGiB} GiB | node ${report.node} | ffmpeg ${report.ffmpeg} | load avg at start ${report.loadavgAtStart.join(' ')} | machine ${report.machineBusyBeforeStart}% busy before start`);
  if (report.gatewayNodeArgs) o.push(`gateway node options: ${report.gatewayNodeArgs}`);
  o.push(`publisher media: ${report.clip.description}, video ${report.clip.videoKbps} kbit/s, audio ${report.clip.audioKbps} kbit/s, ${report.clip.packetsPerSec} RTP pkt/s per publisher`);
  o.push('');
  if (report.startup.encoder.runs + report.startup.replay.runs > 0) {
    o.push(`-- 1. Start-up latency, from the WHIP 201 (HLS 1 s segments; goal first segment <= ${report.startup.goalMs} ms) --`);
    const sRow = (label: string, s: ReturnType<typeof summarise>) => [
      label,
      `${s.runs - s.failures}/${s.runs}`,
      s.whipMs.median,
      s.connectedMs.median,
      s.connectedMs.max,
      s.firstMediaMs.median,
      s.firstSegmentMs.median,
      s.firstSegmentMs.max,
      `${s.withinGoal}/${s.runs}`,
    ];
    o.push(
      table(
        ['publisher media', 'ok', 'POST->201 med', 'connected med', 'connected max', '1st RTP med', '1st segment med', '1st segment max', '<= goal'],
        [sRow('live x264 encoder (starts at connect)', report.startup.encoder), sRow('replayed clip (keyframe at connect)', report.startup.replay)],
      ),
    );
    o.push('(ms; "1st RTP" = first media packet the publisher sent. Per run, first segment ms: encoder ' +
      report.startup.encoder.raw.map((r) => r.firstSegmentMs ?? 'x').join(', ') + '; replay ' + report.startup.replay.raw.map((r) => r.firstSegmentMs ?? 'x').join(', ') + ')');
    o.push('');
  }
  if (report.load.length + report.loadFailures.length > 0) {
    const hls = report.hlsAudio === 'copy' ? 'HLS with Opus copied into fMP4 segments' : 'HLS with AAC in MPEG-TS segments';
    o.push(`-- 2. Load: N publishers, 720p30 ~2.5 Mbit/s H.264 + Opus each, ${hls}, ${STEADY_SECONDS} s steady window (CPU % of one core; 2 cores = 200%) --`);
    o.push(
      table(
        ['N', 'connected', 'HLS running/advancing', 'gw CPU%', 'gw RSS MB', 'ffmpeg CPU%', 'ffmpeg RSS/PSS MB', 'bench CPU%', 'other CPU%', 'machine busy%'],
        report.load.map((l) => [
          l.n,
          `${l.connected}/${l.n}`,
          `${l.hls.running}/${l.hls.advancing}`,
          l.gateway.cpuPercent,
          l.gateway.rssMB,
          `${l.ffmpeg.cpuPercent} (${l.ffmpeg.processes} proc)`,
          `${l.ffmpeg.rssMB}/${l.ffmpeg.pssMB}`,
          l.bench.cpuPercent,
          l.system.otherCpuPercent,
          l.system.busyPercent,
        ]),
      ),
    );
    o.push('');
    o.push('Packets (per second over the window, all streams):');
    o.push(
      table(
        ['N', 'nominal', 'sent', 'gw received', 'gw Mbit/s', 'reorder lost', 'UDP drops gw/ffmpeg/bench', 'publisher lag ms', 'stream/output events'],
        report.load.map((l) => [
          l.n,
          l.packets.nominalPerSec,
          l.packets.sentPerSec,
          l.packets.receivedPerSec,
          l.packets.receivedMbps,
          l.packets.lost,
          `${l.udpDrops.gateway}/${l.udpDrops.ffmpeg}/${l.udpDrops.bench}`,
          l.packets.publisherMaxLagMs,
          Object.entries(l.events.inWindow).map(([k, v]) => `${k} ${v}`).join(', ') || 'none',
        ]),
      ),
    );
    o.push('(reorder lost and UDP drops are totals over the window; lag = worst lateness of a packet in the publishers\' pacing loop)');
    o.push('');
    o.push('Per stream:');
    o.push(
      table(
        ['N', 'gw CPU%/stream', 'ffmpeg CPU%/stream', 'gw mem MB/stream', 'ffmpeg RSS MB/stream', 'ffmpeg PSS MB/stream', 'gw RSS idle->end MB', 'gw RSS growth in window MB', 'gw stop ms (live)'],
        report.load.map((l) => [
          l.n,
          l.perStream.gatewayCpuPercent,
          l.perStream.ffmpegCpuPercent,
          l.perStream.gatewayMemMB,
          l.perStream.ffmpegRssMB,
          l.perStream.ffmpegPssMB,
          `${l.gateway.baselineRssMB}->${l.gateway.rssMB}`,
          l.gateway.rssGrowthInWindowMB,
          `${l.gatewayStopMs ?? '-'}${l.gatewayStopClean === false ? ' unclean' : ''}${l.ffmpegLeftAfterStop ? ` ${l.ffmpegLeftAfterStop} orphans` : ''}`,
        ]),
      ),
    );
    o.push('');
    for (const l of report.load) {
      o.push(`N=${l.n}: ${l.saturated ? 'SATURATED — ' : ''}${l.notes.length ? l.notes.join('; ') : 'kept up (no loss, publishers on pace, HLS advancing for every stream)'}`);
      if (l.system.otherCpuPercent > 10 && l.system.busiestOthers.length) o.push(`      other processes busy meanwhile: ${l.system.busiestOthers.join(', ')}`);
    }
    for (const f of report.loadFailures) o.push(`N=${f.n}: FAILED ${f.error.split('\n').join(' | ').slice(0, 600)}`);
    o.push('(gw = gateway node process; ffmpeg = its ffmpeg children summed (RSS counts shared libraries once per process, PSS shares them out);');
    o.push(' bench = this process, which runs every werift publisher on the same cores; machine busy% = all cores; mem/stream = (RSS - idle RSS) / N)');
    o.push('');
  }
  if (report.outputs) o.push(...printOutputs(report.outputs), '');
  if (report.outputsError) o.push(`-- 3./4. Output types and viewers: FAILED ${report.outputsError}`, '');
  if (report.chromium) o.push(...printChromium(report.chromium), '');
  if (report.chromiumError) o.push(`-- 5. Chromium publishing: FAILED ${report.chromiumError}`, '');
  if (report.auth) o.push(...printAuth(report.auth), '');
  if (report.authError) o.push(`-- 6. Cost of checking credentials: FAILED ${report.authError}`, '');
  if (report.janus) {
    const gateway = report.load.map((l) => ({ n: l.n, selfPerStream: l.perStream.gatewayCpuPercent, treePerStream: r1(l.perStream.gatewayCpuPercent + l.perStream.ffmpegCpuPercent) }));
    o.push(...printJanus(report.janus, gateway), '');
  }
  if (report.janusError) o.push(`-- 7. Anchor (Janus): not run: ${report.janusError}`, '');
  if (report.transcode) o.push(...printTranscode(report.transcode, report.nproc), '');
  if (report.transcodeError) o.push(`-- 8. Transcoder: FAILED ${report.transcodeError}`, '');
  if (report.g2g) o.push(...printG2G(report.g2g), '');
  if (report.g2gError) o.push(`-- 9. Glass to glass: FAILED ${report.g2gError}`, '');
  if (report.whep) o.push(...printWhep(report.whep), '');
  if (report.whepError) o.push(`-- 13. WHEP viewers: FAILED ${report.whepError}`, '');
  if (report.composite) o.push(...printComposite(report.composite), '');
  if (report.compositeError) o.push(`-- 10. Composites: FAILED ${report.compositeError}`, '');
  o.push('Gateway warnings/errors (LOG_LEVEL=warn):');
  for (const p of report.gatewayLog) {
    o.push(`  ${p.phase}: ${p.warnings}`);
    for (const s of p.samples) o.push(`    ${s}`);
  }
  o.push(`bench took ${report.benchSeconds} s`);
  o.push('');
  o.push('JSON:');
  process.stdout.write(o.join('\n') + '\n');
  const { load, ...rest } = report;
  process.stdout.write(JSON.stringify({ ...rest, load }) + '\n');
}

main().then(
  async () => {
    await cleanupAll();
    process.exit(0);
  },
  async (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error)?.stack ?? String(e)}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
