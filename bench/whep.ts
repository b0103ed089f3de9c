import { spawn, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { cleanupAll, installExitHandlers, track, untrack } from './cleanup.js';
import { log, median, r0, r1, table } from './format.js';
import { buildGateway, GatewayProcess, ROOT, sleep } from './gateway-process.js';
import { encodeClip, Replay, ReplayClock, type EncodeOptions } from './media.js';
import { sampleTree, treeCpuPercent } from './proc.js';
import { publish } from './publisher.js';

// Scenario 13, WHEP viewers (issue 26 item 6): the CPU one real-time viewer costs. One
// 720p30 H.264 stream (the load test's clip, 2.5 Mbit/s + Opus, replayed by a werift
// publisher) with 0, 1, 10 and 50 WHEP viewers, added step by step. The viewers are werift
// peers (bench/whep-viewers.ts) in processes of their own, 25 to a process, each receiving
// and decrypting everything it is sent as a browser would (NACK, PLI, transport-cc
// negotiated), so the gateway's CPU is measured alone: its process (main thread and media
// workers; HLS off, so no ffmpeg), over BENCH_WHEP_SECONDS per step. All viewers of a
// stream run on its publisher's media worker: its event-loop load is the limit.
// Run alone: node --import tsx bench/whep.ts

const SECONDS = Number(process.env.BENCH_WHEP_SECONDS ?? 10);
const STEPS = (process.env.BENCH_WHEP_STEPS ?? '0,1,10,50').split(',').map(Number);
const PER_PROCESS = 25;
const CLIP: EncodeOptions = { width: 1280, height: 720, fps: 30, videoKbps: 2500, seconds: 10, gop: 30 };
const NAME = 'whepbench';

export interface WhepStep {
  viewers: number;
  /** The gateway process, % of one core. */
  gatewayCpu: number;
  /** (gatewayCpu - gatewayCpu at 0 viewers) / viewers. */
  perViewerCpu?: number;
  /** Event-loop utilisation of the stream's media worker (0-1). */
  workerLoad?: number;
  /** Packets per second each viewer received: the lowest and the median (the stream sends `streamPps`). */
  viewerPpsMin?: number;
  viewerPpsMedian?: number;
  /** Viewers the API said keep up. */
  keepingUp?: number;
  /** The viewer processes' CPU, % of one core. */
  viewerProcessesCpu?: number;
}

export interface WhepReport {
  clip: string;
  streamPps: number;
  seconds: number;
  steps: WhepStep[];
  /** werift viewers: the 201 -> first media packet, ms. */
  firstVideoMs: number[];
  gatewayWarnings: string[];
}

interface ViewerProcess {
  proc: ChildProcess;
  packets: number[];
  cpuUs: number;
  ready: Promise<number[]>;
}

function viewerProcess(url: string, count: number): ViewerProcess {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'bench/whep-viewers.ts', url, NAME, String(count)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  track(proc);
  const vp: ViewerProcess = { proc, packets: [], cpuUs: 0, ready: Promise.resolve([]) };
  vp.ready = new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const m = JSON.parse(line) as { ready?: number; firstVideoMs?: number[]; packets?: number[]; cpu?: NodeJS.CpuUsage; error?: string };
        if (m.error) reject(new Error(m.error));
        if (m.ready !== undefined) resolve(m.firstVideoMs ?? []);
        if (m.packets) vp.packets = m.packets;
        if (m.cpu) vp.cpuUs = m.cpu.user + m.cpu.system;
      }
    });
    proc.once('exit', (code) => reject(new Error(`viewer process exited (${code})`)));
  });
  return vp;
}

function workerLoad(metrics: string, worker: number): number | undefined {
  const m = new RegExp(`^gateway_media_worker_load\\{worker="${worker}"\\} (\\S+)$`, 'm').exec(metrics);
  return m ? Number(m[1]) : undefined;
}

export async function whepBench(): Promise<WhepReport> {
  const clip = await encodeClip(CLIP);
  log(`whep: clip ${clip.description}, ${r0(clip.packetRate)} pkt/s`);
  const max = Math.max(...STEPS);
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const gw = await GatewayProcess.start({ HLS_AUTO: 'false', WHEP_MAX_VIEWERS_PER_STREAM: String(max + 10), WHEP_MAX_VIEWERS: String(max + 10) }, nodeArgs);
  const clock = new ReplayClock();
  const procs: ViewerProcess[] = [];
  const firstVideoMs: number[] = [];
  const steps: WhepStep[] = [];
  try {
    const pub = await publish(gw.url, NAME);
    if (pub.status !== 201) throw new Error(`WHIP ${pub.status} ${pub.errorText ?? ''}`);
    await pub.connected;
    const replay = new Replay(clip, pub.direct());
    replay.start();
    clock.add(replay);
    await sleep(3000);
    let viewers = 0;
    for (const n of STEPS) {
      while (viewers < n) {
        const count = Math.min(PER_PROCESS, n - viewers);
        const vp = viewerProcess(gw.url, count);
        procs.push(vp);
        firstVideoMs.push(...(await vp.ready));
        viewers += count;
      }
      log(`whep: ${viewers} viewers; ${SECONDS} s`);
      await sleep(3000);
      const a = { tree: sampleTree(gw.pid), packets: procs.map((p) => [...p.packets]), cpu: procs.map((p) => p.cpuUs) };
      await sleep(SECONDS * 1000);
      const b = { tree: sampleTree(gw.pid), packets: procs.map((p) => [...p.packets]), cpu: procs.map((p) => p.cpuUs) };
      const secs = (b.tree.at - a.tree.at) / 1000;
      const gatewayCpu = treeCpuPercent(a.tree, b.tree).self;
      const pps = b.packets.flatMap((list, i) => list.map((x, j) => (x - (a.packets[i]?.[j] ?? 0)) / secs));
      const [info, metrics] = await Promise.all([gw.api<{ worker: number; viewers: { keepingUp: boolean }[] }>(`/api/streams/${NAME}`), fetch(`${gw.url}/metrics`).then((r) => r.text())]);
      const base = steps[0]?.viewers === 0 ? steps[0].gatewayCpu : undefined;
      steps.push({
        viewers,
        gatewayCpu: r1(gatewayCpu),
        ...(viewers > 0 && base !== undefined ? { perViewerCpu: r1((gatewayCpu - base) / viewers) } : {}),
        workerLoad: workerLoad(metrics, info.worker),
        ...(pps.length ? { viewerPpsMin: r0(Math.min(...pps)), viewerPpsMedian: r0(median(pps)) } : {}),
        keepingUp: info.viewers.filter((v) => v.keepingUp).length,
        ...(viewers > 0 ? { viewerProcessesCpu: r1((b.cpu.reduce((s, x) => s + x, 0) - a.cpu.reduce((s, x) => s + x, 0)) / 1e4 / secs) } : {}),
      });
      log(`whep: ${JSON.stringify(steps.at(-1))}`);
    }
    return { clip: clip.description, streamPps: r0(clip.packetRate), seconds: SECONDS, steps, firstVideoMs, gatewayWarnings: [...new Set(gw.problems().map((l) => l.msg))].slice(0, 5) };
  } finally {
    clock.stop();
    for (const p of procs) {
      p.proc.kill('SIGTERM');
      untrack(p.proc);
    }
    await sleep(500);
    for (const p of procs) p.proc.kill('SIGKILL');
    await gw.stop();
  }
}

export function printWhep(r: WhepReport): string[] {
  return [
    `-- 13. WHEP viewers of one stream (${r.clip}, ${r.streamPps} pkt/s), werift viewers in their own processes; ${r.seconds} s per step --`,
    table(
      ['viewers', 'gateway CPU %', 'per viewer %', 'worker load', 'pkt/s per viewer (min/median)', 'keeping up', 'viewer processes CPU %'],
      r.steps.map((s) => [s.viewers, s.gatewayCpu, s.perViewerCpu ?? '-', s.workerLoad === undefined ? '-' : r1(s.workerLoad * 100) / 100, s.viewerPpsMin === undefined ? '-' : `${s.viewerPpsMin}/${s.viewerPpsMedian}`, s.viewers ? `${s.keepingUp}/${s.viewers}` : '-', s.viewerProcessesCpu ?? '-']),
    ),
    `first packet after the 201 (werift viewers): median ${r0(median(r.firstVideoMs))} ms, max ${Math.max(...r.firstVideoMs)} ms`,
    ...(r.gatewayWarnings.length ? [`gateway warnings: ${r.gatewayWarnings.join(' | ').slice(0, 300)}`] : []),
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  installExitHandlers();
  const main = async () => {
    if (!process.env.BENCH_SKIP_BUILD) buildGateway();
    const report = await whepBench();
    process.stdout.write(['', ...printWhep(report), '', 'JSON:', JSON.stringify(report), ''].join('\n'));
  };
  main().then(
    async () => (await cleanupAll(), process.exit(0)),
    async (e: unknown) => {
      process.stderr.write(`whep bench failed: ${(e as Error)?.stack ?? String(e)}\n`);
      await cleanupAll();
      process.exit(1);
    },
  );
}
