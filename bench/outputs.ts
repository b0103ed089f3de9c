import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import http from 'node:http';
import { onCleanup, track } from './cleanup.js';
import { r0, r1, mb, median, log, table } from './format.js';
import { freePort } from '../test/helpers/free-port.js';
import { GatewayProcess, sleep } from './gateway-process.js';
import { Replay, ReplayClock, type Clip } from './media.js';
import { sampleTree, sumChildren, systemBusyPercent, systemCpu, treeCpuPercent, type TreeSample } from './proc.js';
import { publish } from './publisher.js';

// Issue 3's benchmark: what each output type costs for one 720p30 stream (its ffmpeg's CPU
// and memory, and the gateway's extra CPU for feeding it), one at a time on a gateway with
// no other output, and how many concurrent /live/<name>.ts viewers one stream serves.
// Every receiver is real and local: UDP sockets in this process for rtp/rtp-mpegts/udp, an
// ffmpeg SRT listener, an ffmpeg RTMP listener, HTTP clients for mpegts-http.

const WINDOW_SECONDS = Number(process.env.BENCH_OUTPUT_SECONDS ?? 8);
const VIEWER_STEPS = (process.env.BENCH_VIEWERS ?? '1,10,50,100,200,400,800').split(',').map(Number).filter((n) => n > 0);
/** A viewer keeps up when it received at least this share of what ffmpeg produced in the window. */
const KEEP_UP_SHARE = 0.9;

export interface OutputCost {
  type: string;
  label: string;
  state: string;
  ffmpegProcesses: number;
  ffmpegCpuPercent: number;
  ffmpegRssMB: number;
  ffmpegPssMB: number;
  /** The gateway's CPU with this output minus its CPU with none (RTP forwarding, fan-out). */
  gatewayExtraCpuPercent: number;
  outMbps: number;
  receiverMbps: number;
  error?: string;
}

export interface ViewerStep {
  viewers: number;
  keptUp: number;
  dropped: number;
  gatewayCpuPercent: number;
  gatewayRssMB: number;
  deliveredMbps: number;
  benchCpuPercent: number;
  machineBusyPercent: number;
}

export interface OutputsReport {
  windowSeconds: number;
  gatewayBaseCpuPercent: number;
  costs: OutputCost[];
  snapshotMs: number[];
  viewers: ViewerStep[];
  /** Largest viewer count at which every viewer kept up. */
  viewersServed: number;
}

interface OutputInfo {
  id: string;
  type: string;
  state: string;
  bytesOut: number;
  error?: string;
}

/** Something that receives an output: where to send, and how many bytes it got. */
interface Receiver {
  body: Record<string, unknown>;
  bytes: () => number;
  close: () => void;
}

/** A UDP socket on an even port (RTP outputs insist on one), counting what arrives. */
async function udpSink(): Promise<{ port: number; bytes: () => number; close: () => void }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 42000 + 2 * Math.floor(Math.random() * 2000);
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 * 1024 * 1024 });
    let bytes = 0;
    s.on('message', (m) => (bytes += m.length));
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.bind(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) return { port, bytes: () => bytes, close: () => s.close() };
    s.close();
  }
  throw new Error('no free even UDP port for a sink');
}

/** An ffmpeg that listens (SRT or RTMP) and discards; bytes are not counted (ffmpeg reads them). */
function ffmpegListener(input: string[]): () => void {
  const proc = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...input, '-c', 'copy', '-f', 'null', '-'], { stdio: 'ignore' });
  track(proc);
  return () => proc.kill('SIGKILL');
}

const RECEIVERS: Record<string, () => Promise<Receiver>> = {
  async rtp() {
    const v = await udpSink();
    const a = await udpSink();
    return { body: { host: '127.0.0.1', videoPort: v.port, audioPort: a.port }, bytes: () => v.bytes() + a.bytes(), close: () => (v.close(), a.close()) };
  },
  async 'rtp-mpegts'() {
    const s = await udpSink();
    return { body: { host: '127.0.0.1', port: s.port }, bytes: s.bytes, close: s.close };
  },
  async udp() {
    const s = await udpSink();
    return { body: { url: `udp://127.0.0.1:${s.port}?pkt_size=1316` }, bytes: s.bytes, close: s.close };
  },
  async srt() {
    const port = 44000 + Math.floor(Math.random() * 1000);
    const close = ffmpegListener(['-f', 'mpegts', '-i', `srt://127.0.0.1:${port}?mode=listener`]);
    await sleep(500); // the listener must be up before the caller connects
    return { body: { url: `srt://127.0.0.1:${port}` }, bytes: () => NaN, close };
  },
  async rtmp() {
    const port = await freePort();
    const close = ffmpegListener(['-listen', '1', '-f', 'flv', '-i', `rtmp://127.0.0.1:${port}/live/bench`]);
    await sleep(500);
    return { body: { url: `rtmp://127.0.0.1:${port}/live/bench` }, bytes: () => NaN, close };
  },
};

/** A /live/<name>.ts viewer: its own TCP connection, reading as fast as it can. */
interface TsViewer {
  bytes: number;
  ended: boolean;
  close: () => void;
}

function openViewer(gw: GatewayProcess, name: string): TsViewer {
  const v: TsViewer = { bytes: 0, ended: false, close: () => undefined };
  const req = http.get(`${gw.url}/live/${name}.ts`, { agent: false }, (res) => {
    res.on('data', (c: Buffer) => (v.bytes += c.length));
    res.on('end', () => (v.ended = true));
    res.on('error', () => (v.ended = true));
  });
  req.on('error', () => (v.ended = true));
  v.close = () => req.destroy();
  return v;
}

async function json<T>(gw: GatewayProcess, method: string, pathname: string, body?: unknown): Promise<{ status: number; body: T; text?: string }> {
  const r = await fetch(`${gw.url}${pathname}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(15_000),
  });
  // Errors come as one-line text; only JSON answers carry a body here.
  const isJson = r.headers.get('content-type')?.includes('json');
  if (isJson) return { status: r.status, body: (await r.json()) as T };
  return { status: r.status, body: undefined as T, text: await r.text() };
}

async function waitRunning(gw: GatewayProcess, name: string, id: string, ms = 15_000): Promise<OutputInfo> {
  const deadline = performance.now() + ms;
  let info: OutputInfo | undefined;
  while (performance.now() < deadline) {
    info = await outputInfo(gw, name, id); // 404 until an on-demand output exists
    if (info?.state === 'running' || info?.state === 'failed') return info;
    await sleep(200);
  }
  return info ?? { id, type: '?', state: 'unknown', bytesOut: 0 };
}

async function outputInfo(gw: GatewayProcess, name: string, id: string): Promise<OutputInfo | undefined> {
  return (await json<OutputInfo | undefined>(gw, 'GET', `/api/streams/${name}/outputs/${id}`)).body;
}

async function outputBytes(gw: GatewayProcess, name: string, id: string): Promise<number> {
  return (await outputInfo(gw, name, id))?.bytesOut ?? 0;
}

/** One window's CPU readings of the gateway and its children. */
async function measure(gw: GatewayProcess, seconds: number): Promise<{ a: TreeSample; b: TreeSample; cpu: ReturnType<typeof treeCpuPercent> }> {
  const a = sampleTree(gw.pid, true);
  await sleep(seconds * 1000);
  const b = sampleTree(gw.pid, true);
  return { a, b, cpu: treeCpuPercent(a, b) };
}

async function costOf(gw: GatewayProcess, name: string, type: string, label: string, extra: Record<string, unknown>, baseCpu: number): Promise<OutputCost> {
  const receiver = RECEIVERS[type] ? await RECEIVERS[type]() : undefined;
  let viewer: TsViewer | undefined;
  let id = type;
  try {
    if (type === 'mpegts-http') viewer = openViewer(gw, name); // the first viewer starts it
    else {
      const r = await json<OutputInfo>(gw, 'POST', `/api/streams/${name}/outputs`, { type, ...receiver?.body, ...extra });
      if (r.status !== 201) throw new Error(`POST ${type}: ${r.status} ${r.text ?? JSON.stringify(r.body)}`);
      id = r.body.id;
    }
    const info = await waitRunning(gw, name, id);
    if (info.state !== 'running') throw new Error(`${type} is ${info.state}${info.error ? `: ${info.error}` : ''}`);
    await sleep(2000); // past the start (GOP replay, probing)
    const bytesA = await outputBytes(gw, name, id);
    const recvA = receiver?.bytes() ?? viewer?.bytes ?? NaN;
    const { b, cpu } = await measure(gw, WINDOW_SECONDS);
    const after = await outputInfo(gw, name, id);
    const bytesB = after?.bytesOut ?? 0;
    const recvB = receiver?.bytes() ?? viewer?.bytes ?? NaN;
    const state = after?.state ?? 'gone';
    // NaN ("-") where nothing is counted: HLS writes files the gateway does not tally.
    const mbps = (bytes: number) => (bytes > 0 ? r1((bytes * 8) / WINDOW_SECONDS / 1e6) : NaN);
    return {
      type,
      label,
      state,
      ffmpegProcesses: b.children.size,
      ffmpegCpuPercent: r1(cpu.children),
      ffmpegRssMB: r1(mb(sumChildren(b, 'rss'))),
      ffmpegPssMB: r1(mb(sumChildren(b, 'pss'))),
      gatewayExtraCpuPercent: r1(cpu.self - baseCpu),
      outMbps: mbps(bytesB - bytesA),
      receiverMbps: mbps(recvB - recvA),
    };
  } catch (e) {
    return { type, label, state: 'error', ffmpegProcesses: 0, ffmpegCpuPercent: NaN, ffmpegRssMB: NaN, ffmpegPssMB: NaN, gatewayExtraCpuPercent: NaN, outMbps: NaN, receiverMbps: NaN, error: (e as Error).message.slice(0, 300) };
  } finally {
    if (viewer) viewer.close();
    else await json(gw, 'DELETE', `/api/streams/${name}/outputs/${id}`).catch(() => undefined);
    receiver?.close();
    // The next measurement starts with no ffmpeg (mpegts-http stops after its idle delay).
    const deadline = performance.now() + 20_000;
    while (sampleTree(gw.pid).children.size > 0 && performance.now() < deadline) await sleep(200);
  }
}

/**
 * HLS, one /live viewer and an RTMP push on the same stream at once: what a stream with
 * several AAC outputs costs (they share one AAC encode; each used to encode its own).
 */
async function costOfTogether(gw: GatewayProcess, name: string, baseCpu: number): Promise<OutputCost> {
  const label = 'hls + mpegts-http + rtmp together';
  const rtmp = await RECEIVERS.rtmp();
  const viewer = openViewer(gw, name);
  const ids: string[] = [];
  try {
    for (const body of [{ type: 'hls' }, { type: 'rtmp', ...rtmp.body }]) {
      const r = await json<OutputInfo>(gw, 'POST', `/api/streams/${name}/outputs`, body);
      if (r.status !== 201) throw new Error(`POST ${body.type}: ${r.status} ${r.text ?? JSON.stringify(r.body)}`);
      ids.push(r.body.id);
    }
    for (const id of [...ids, 'mpegts-http']) {
      const info = await waitRunning(gw, name, id);
      if (info.state !== 'running') throw new Error(`${id} is ${info.state}${info.error ? `: ${info.error}` : ''}`);
    }
    await sleep(2000);
    const { b, cpu } = await measure(gw, WINDOW_SECONDS);
    return {
      type: 'together',
      label,
      state: 'running',
      ffmpegProcesses: b.children.size,
      ffmpegCpuPercent: r1(cpu.children),
      ffmpegRssMB: r1(mb(sumChildren(b, 'rss'))),
      ffmpegPssMB: r1(mb(sumChildren(b, 'pss'))),
      gatewayExtraCpuPercent: r1(cpu.self - baseCpu),
      outMbps: NaN,
      receiverMbps: NaN,
    };
  } catch (e) {
    return { type: 'together', label, state: 'error', ffmpegProcesses: 0, ffmpegCpuPercent: NaN, ffmpegRssMB: NaN, ffmpegPssMB: NaN, gatewayExtraCpuPercent: NaN, outMbps: NaN, receiverMbps: NaN, error: (e as Error).message.slice(0, 300) };
  } finally {
    viewer.close();
    for (const id of ids) await json(gw, 'DELETE', `/api/streams/${name}/outputs/${id}`).catch(() => undefined);
    rtmp.close();
    const deadline = performance.now() + 20_000;
    while (sampleTree(gw.pid).children.size > 0 && performance.now() < deadline) await sleep(200);
  }
}

async function viewerCapacity(gw: GatewayProcess, name: string): Promise<ViewerStep[]> {
  const viewers: TsViewer[] = [];
  const steps: ViewerStep[] = [];
  try {
    for (const k of VIEWER_STEPS) {
      while (viewers.length < k) viewers.push(openViewer(gw, name));
      await waitRunning(gw, name, 'mpegts-http');
      await sleep(3000);
      const before = viewers.map((v) => v.bytes);
      const bytesA = await outputBytes(gw, name, 'mpegts-http');
      const sysA = systemCpu();
      const benchA = process.cpuUsage();
      const { b, cpu } = await measure(gw, WINDOW_SECONDS);
      const benchCpu = process.cpuUsage(benchA);
      const produced = (await outputBytes(gw, name, 'mpegts-http')) - bytesA;
      const got = viewers.map((v, i) => v.bytes - before[i]);
      const step: ViewerStep = {
        viewers: k,
        keptUp: viewers.filter((v, i) => !v.ended && got[i] >= KEEP_UP_SHARE * produced).length,
        dropped: viewers.filter((v) => v.ended).length,
        gatewayCpuPercent: r1(cpu.self),
        gatewayRssMB: r1(mb(b.rss)),
        deliveredMbps: r1((got.reduce((s, x) => s + x, 0) * 8) / WINDOW_SECONDS / 1e6),
        benchCpuPercent: r1((100 * (benchCpu.user + benchCpu.system)) / 1e6 / WINDOW_SECONDS),
        machineBusyPercent: r1(systemBusyPercent(sysA, systemCpu())),
      };
      steps.push(step);
      log(`mpegts-http viewers ${k}: ${step.keptUp} kept up, ${step.dropped} dropped, gateway ${step.gatewayCpuPercent}% CPU, ${step.deliveredMbps} Mbit/s delivered, machine ${step.machineBusyPercent}% busy`);
      if (step.keptUp < k) break; // the limit is found
    }
  } finally {
    for (const v of viewers) v.close();
  }
  return steps;
}

/** The whole output scenario, on its own gateway (HLS not started automatically). */
export async function outputsBench(clip: Clip, nodeArgs: string[]): Promise<OutputsReport> {
  const gw = await GatewayProcess.start({ HLS_AUTO: 'false' }, nodeArgs);
  const clock = new ReplayClock();
  const name = 'outputs';
  const pub = await publish(gw.url, name);
  const removeCleanup = onCleanup(() => pub.close());
  try {
    if (pub.status !== 201) throw new Error(`WHIP ${pub.status}: ${pub.errorText ?? ''}`);
    await pub.connected;
    const replay = new Replay(clip, pub.direct());
    replay.start();
    clock.add(replay);
    await sleep(2000);
    const base = await measure(gw, WINDOW_SECONDS);
    log(`outputs: gateway ${r1(base.cpu.self)}% CPU receiving one stream with no output`);

    const plan: [string, string, Record<string, unknown>][] = [
      ['hls', 'hls (TS segments)', {}],
      ['hls', 'hls (fMP4 segments)', { segmentFormat: 'fmp4' }],
      ['hls', 'hls (fMP4, audio copy: Opus kept)', { segmentFormat: 'fmp4', audio: 'copy' }],
      ['mpegts-http', 'mpegts-http (1 viewer)', {}],
      ['record', 'record (fragmented MP4)', {}],
      ['record', 'record (MKV)', { format: 'mkv' }],
      ['rtp', 'rtp (no ffmpeg)', {}],
      ['rtp-mpegts', 'rtp-mpegts', {}],
      ['udp', 'udp', {}],
      ['srt', 'srt', {}],
      ['rtmp', 'rtmp', {}],
    ];
    const costs: OutputCost[] = [];
    for (const [type, label, extra] of plan) {
      const c = await costOf(gw, name, type, label, extra, base.cpu.self);
      costs.push(c);
      log(`outputs: ${label}: ${c.error ? `ERROR ${c.error}` : `ffmpeg ${c.ffmpegCpuPercent}% CPU ${c.ffmpegRssMB} MB, gateway +${c.gatewayExtraCpuPercent}%`}`);
    }
    const together = await costOfTogether(gw, name, base.cpu.self);
    costs.push(together);
    log(`outputs: ${together.label}: ${together.error ? `ERROR ${together.error}` : `${together.ffmpegProcesses} ffmpeg, ${together.ffmpegCpuPercent}% CPU`}`);

    const snapshotMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await fetch(`${gw.url}/api/streams/${name}/snapshot.jpg`, { signal: AbortSignal.timeout(15_000) });
      await r.arrayBuffer();
      if (r.ok) snapshotMs.push(r0(performance.now() - t0));
      await sleep(500);
    }

    const viewers = await viewerCapacity(gw, name);
    const served = viewers.filter((s) => s.keptUp === s.viewers).reduce((m, s) => Math.max(m, s.viewers), 0);
    return { windowSeconds: WINDOW_SECONDS, gatewayBaseCpuPercent: r1(base.cpu.self), costs, snapshotMs, viewers, viewersServed: served };
  } finally {
    clock.stop();
    removeCleanup();
    await pub.close();
    await gw.stop();
  }
}

export function printOutputs(r: OutputsReport): string[] {
  const o: string[] = [];
  o.push(`-- 3. Output types: one 720p30 stream, one output at a time, ${r.windowSeconds} s window (CPU % of one core) --`);
  o.push(`gateway with the stream and no output: ${r.gatewayBaseCpuPercent}% CPU`);
  o.push(
    table(
      ['output', 'state', 'ffmpeg', 'ffmpeg CPU%', 'ffmpeg RSS/PSS MB', 'gw extra CPU%', 'out Mbit/s', 'receiver Mbit/s'],
      r.costs.map((c) => [c.label, c.error ? 'error' : c.state, c.ffmpegProcesses, c.ffmpegCpuPercent, `${c.ffmpegRssMB}/${c.ffmpegPssMB}`, c.gatewayExtraCpuPercent, c.outMbps, c.receiverMbps]),
    ),
  );
  for (const c of r.costs.filter((x) => x.error)) o.push(`  ${c.label}: ${c.error}`);
  o.push('(out = bytes the output wrote as the gateway counts them ("-" for HLS files); receiver = bytes the local receiver got ("-" where an ffmpeg listener took them);');
  o.push(' gw extra = gateway CPU with the output minus without: forwarding RTP to it, and for mpegts-http the HTTP fan-out;');
  o.push(' ffmpeg = processes: an output that writes AAC counts the stream\'s one AAC encoder, which several such outputs share)');
  o.push(`snapshot.jpg: ${r.snapshotMs.join(', ')} ms per request (median ${median(r.snapshotMs)} ms; one short ffmpeg each)`);
  o.push('');
  o.push(`-- 4. Concurrent /live/<name>.ts viewers of one stream (a viewer keeps up when it gets >= ${KEEP_UP_SHARE * 100}% of what ffmpeg produced) --`);
  o.push(
    table(
      ['viewers', 'kept up', 'dropped', 'gw CPU%', 'gw RSS MB', 'delivered Mbit/s', 'bench CPU% (viewers)', 'machine busy%'],
      r.viewers.map((v) => [v.viewers, v.keptUp, v.dropped, v.gatewayCpuPercent, v.gatewayRssMB, v.deliveredMbps, v.benchCpuPercent, v.machineBusyPercent]),
    ),
  );
  o.push(`one stream served ${r.viewersServed} concurrent viewers with every viewer keeping up (the viewers run in this process, on the same cores)`);
  return o;
}
