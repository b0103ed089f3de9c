import type { Browser } from 'playwright-core';
import { launchChromium, PublisherPage, startPageServer, type PageServer, type SenderStats } from '../test/helpers/chromium.js';
import { fakeCameraFile } from '../test/helpers/fake-camera.js';
import { longestGap, watchHls } from '../test/helpers/hls-viewer.js';
import { createShapedLink, netnsSupport, type LinkShape, type ShapedLink } from '../test/helpers/shaped-link.js';
import { onCleanup } from './cleanup.js';
import { log, median, r0, r1, table } from './format.js';
import { GatewayProcess, sleep } from './gateway-process.js';

// Issue 10's benchmark: what a real Chromium sends through the gateway, read from its own
// getStats() every 250 ms, published the way users do (plain getUserMedia +
// RTCPeerConnection, default sender settings). Four parts:
//
// 1. Start-up: WHIP 201 -> connected -> first HLS segment listed (5 runs, 1 s segments).
// 2. Ramp on loopback, with Chromium's own fake camera (a plain pattern, as in the issue's
//    comparison with Janus) and with a camera picture that needs megabits (fake-camera.ts):
//    target and available bitrate at 2, 5, 10 and 20 s, time to 960x540 and 1280x720,
//    PLIs and keyframes per minute.
// 3. A shaped uplink (network namespaces, see test/helpers/shaped-link.ts): 1.5 Mbit/s,
//    then 1.5 Mbit/s with 2 % loss; what Chromium settles at, video packets lost for good
//    at the gateway, and the longest gap between video frames in the HLS a viewer got.
// 4. Keyframe policy: the same 1.5 Mbit/s and 0.5 Mbit/s uplinks with 1 s and 2 s HLS
//    segments (one keyframe requested per segment): the encoder's QP, frame size and rate.

const STARTUP_RUNS = Number(process.env.BENCH_CHROMIUM_STARTUP_RUNS ?? 5);
const RAMP_SECONDS = Number(process.env.BENCH_CHROMIUM_SECONDS ?? 25);
const PHASE_SECONDS = 20;
const SAMPLE_MS = 250;
const HLS_POLL_MS = 20;

interface Sample extends SenderStats {
  /** Seconds since the WHIP 201. */
  t: number;
}

export interface Window {
  seconds: number;
  frameSizes: string;
  fps: number;
  sentKbps: number;
  targetKbps: number;
  availableKbps: number;
  /** Mean encoder QP (H.264: 0-51, lower is sharper). */
  qp: number;
  plisPerMin: number;
  keyframesPerMin: number;
  limitedBy: string;
}

export interface RampReport {
  label: string;
  connectedMs: number;
  firstSegmentMs?: number;
  at: { t: number; size: string; targetKbps: number; availableKbps: number }[];
  firstAt: { '960x540'?: number; '1280x720'?: number };
  /** The last 10 s. */
  settled: Window;
}

export interface ShapedPhase {
  label: string;
  settled: Window;
  /** Video packets the gateway gave up on (lost, not repaired by retransmission). */
  videoLost: number;
  droppedByLink: number;
}

export interface KeyframeRow {
  uplinkKbit: number;
  segmentSeconds: number;
  settled: Window;
}

export interface ChromiumReport {
  chromium: string;
  startup: { runs: { connectedMs?: number; firstSegmentMs?: number; error?: string }[]; connectedMedianMs: number; firstSegmentMedianMs: number; firstSegmentMaxMs: number };
  ramps: RampReport[];
  shaped?: { phases: ShapedPhase[]; hlsLongestGapSeconds: number; hlsFrames: number };
  keyframes: KeyframeRow[];
  skipped: string[];
}

/** A summary of the samples from `from` seconds on. */
function windowOf(samples: Sample[], from: number): Window {
  const w = samples.filter((s) => s.t >= from);
  const a = w[0];
  const b = w.at(-1)!;
  const secs = ((b.timestamp ?? 0) - (a.timestamp ?? 0)) / 1000;
  const frames = (b.framesEncoded ?? 0) - (a.framesEncoded ?? 0);
  const sizes = new Map<string, number>();
  for (const s of w) sizes.set(`${s.frameWidth}x${s.frameHeight}`, (sizes.get(`${s.frameWidth}x${s.frameHeight}`) ?? 0) + 1);
  return {
    seconds: r1(secs),
    frameSizes: [...sizes].sort((x, y) => y[1] - x[1]).map(([k]) => k).slice(0, 2).join(', '),
    fps: r1(frames / secs),
    sentKbps: r0(((b.bytesSent ?? 0) - (a.bytesSent ?? 0)) * 8 / secs / 1000),
    targetKbps: r0(median(w.map((s) => s.targetBitrate ?? 0)) / 1000),
    availableKbps: r0(median(w.map((s) => s.availableOutgoingBitrate ?? 0)) / 1000),
    qp: r1(((b.qpSum ?? 0) - (a.qpSum ?? 0)) / frames),
    plisPerMin: r1((((b.pliCount ?? 0) - (a.pliCount ?? 0)) * 60) / secs),
    keyframesPerMin: r1((((b.keyFramesEncoded ?? 0) - (a.keyFramesEncoded ?? 0)) * 60) / secs),
    limitedBy: [...new Set(w.map((s) => s.qualityLimitationReason))].join('/'),
  };
}

interface RunOptions {
  browser: Browser;
  gw: GatewayProcess;
  name: string;
  /** Page on a server (loopback) or answered by Playwright (browser in a namespace). */
  site?: PageServer;
  keepOwnCandidates?: boolean;
  seconds: number;
  /** Called at these seconds after the 201 (link changes). */
  at?: { t: number; run: () => Promise<void> }[];
}

interface RunResult {
  samples: Sample[];
  connectedMs: number;
  firstSegmentMs?: number;
}

/** One Chromium publisher: publish, sample getStats() for `seconds`, stop. */
async function publishAndSample(o: RunOptions): Promise<RunResult> {
  const pub = o.site ? await PublisherPage.open(o.browser, o.site.url) : await PublisherPage.openServed(o.browser);
  try {
    let firstSegmentAt: number | undefined;
    let polling = true;
    const poll = (async () => {
      while (polling && firstSegmentAt === undefined) {
        const r = await fetch(`${o.gw.url}/hls/${o.name}/index.m3u8`).catch(() => undefined);
        if (r?.ok && /^[^#\s].*\.(ts|m4s)(\?\S*)?\s*$/m.test(await r.text())) firstSegmentAt = Date.now(); // a complete segment (a URI line)
        else await sleep(HLS_POLL_MS);
      }
    })();
    const res = await pub.publish(`${o.gw.url}/whip/${o.name}`, { video: { width: 1280, height: 720 }, audio: true, keepOwnCandidates: o.keepOwnCandidates });
    if (res.status !== 201) throw new Error(`WHIP ${res.status}: ${res.body.slice(0, 200)}`);
    await pub.connected();
    const connectedMs = Date.now() - res.answeredAt;
    const samples: Sample[] = [];
    const pending = [...(o.at ?? [])];
    const end = res.answeredAt + o.seconds * 1000;
    while (Date.now() < end) {
      await sleep(SAMPLE_MS);
      const t = (Date.now() - res.answeredAt) / 1000;
      while (pending.length && pending[0].t <= t) await pending.shift()!.run();
      samples.push({ ...(await pub.senderStats()), t });
    }
    polling = false;
    await poll;
    await pub.stop();
    return { samples, connectedMs, firstSegmentMs: firstSegmentAt && firstSegmentAt - res.answeredAt };
  } finally {
    await pub.close().catch(() => undefined);
  }
}

function rampReport(label: string, r: RunResult): RampReport {
  const near = (t: number) => r.samples.reduce((best, s) => (Math.abs(s.t - t) < Math.abs(best.t - t) ? s : best));
  const first = (w: number) => r.samples.find((s) => (s.frameWidth ?? 0) >= w)?.t;
  return {
    label,
    connectedMs: r0(r.connectedMs),
    firstSegmentMs: r.firstSegmentMs,
    at: [2, 5, 10, 20].filter((t) => t <= RAMP_SECONDS).map((t) => {
      const s = near(t);
      return { t, size: `${s.frameWidth}x${s.frameHeight}`, targetKbps: r0((s.targetBitrate ?? 0) / 1000), availableKbps: r0((s.availableOutgoingBitrate ?? 0) / 1000) };
    }),
    firstAt: { '960x540': first(960) && r1(first(960)!), '1280x720': first(1280) && r1(first(1280)!) },
    settled: windowOf(r.samples, RAMP_SECONDS - 10),
  };
}

/** RAMP_SECONDS of one publisher on a gateway of its own. */
async function loopbackRamp(browser: Browser, site: PageServer, label: string, name: string): Promise<RampReport> {
  const gw = await GatewayProcess.start();
  try {
    return rampReport(label, await publishAndSample({ browser, gw, site, name, seconds: RAMP_SECONDS }));
  } finally {
    await gw.stop();
  }
}

async function startupRuns(browser: Browser, site: PageServer): Promise<ChromiumReport['startup']> {
  const gw = await GatewayProcess.start();
  const runs: ChromiumReport['startup']['runs'] = [];
  try {
    for (let i = 1; i <= STARTUP_RUNS; i++) {
      try {
        const r = await publishAndSample({ browser, gw, site, name: `chromium-start-${i}`, seconds: 3 });
        runs.push({ connectedMs: r.connectedMs, firstSegmentMs: r.firstSegmentMs });
        log(`chromium start-up ${i}/${STARTUP_RUNS}: connected ${r.connectedMs} ms, first segment ${r.firstSegmentMs ?? '-'} ms`);
      } catch (e) {
        runs.push({ error: (e as Error).message });
      }
      await sleep(500);
    }
  } finally {
    await gw.stop();
  }
  const seg = runs.map((r) => r.firstSegmentMs).filter((x): x is number => x !== undefined);
  return {
    runs,
    connectedMedianMs: r0(median(runs.map((r) => r.connectedMs).filter((x): x is number => x !== undefined))),
    firstSegmentMedianMs: r0(median(seg)),
    firstSegmentMaxMs: seg.length ? Math.max(...seg) : NaN,
  };
}

/** Closes the browser on Ctrl-C or an error too. */
function tracked(browser: Browser): Browser {
  const undo = onCleanup(() => browser.close());
  browser.once('disconnected', undo);
  return browser;
}

async function withLink<T>(shape: LinkShape, use: (link: ShapedLink, browser: Browser, gw: GatewayProcess) => Promise<T>, env: Record<string, string> = {}): Promise<T> {
  const link = await createShapedLink(shape);
  const undo = onCleanup(() => link.destroy());
  try {
    // Not loopback, but only the bench's own namespace reaches the lab link: open knowingly.
    const gw = await GatewayProcess.start({ HOST: link.gatewayAddress, ICE_ADDRESSES: link.gatewayAddress, AUTH_MODE: 'none', ...env });
    try {
      const browser = tracked(await link.launchChromium({ cameraFile: await fakeCameraFile() }));
      try {
        return await use(link, browser, gw);
      } finally {
        await browser.close();
      }
    } finally {
      await gw.stop();
    }
  } finally {
    await link.destroy();
    undo();
  }
}

export async function chromiumBench(): Promise<ChromiumReport> {
  const skipped: string[] = [];
  const site = await startPageServer();
  const plain = tracked(await launchChromium());
  const chromium = plain.version();
  let startup: ChromiumReport['startup'];
  const ramps: RampReport[] = [];
  try {
    log(`chromium ${chromium}: start-up, ${STARTUP_RUNS} runs`);
    startup = await startupRuns(plain, site);
    log(`chromium: ramp on loopback, ${RAMP_SECONDS} s, Chromium's own fake camera`);
    ramps.push(await loopbackRamp(plain, site, "loopback, Chromium's fake camera (plain pattern)", 'ramp-pattern'));
  } finally {
    await plain.close();
  }
  log(`chromium: ramp on loopback, ${RAMP_SECONDS} s, a detailed camera picture`);
  const detailed = tracked(await launchChromium({ cameraFile: await fakeCameraFile() }));
  try {
    ramps.push(await loopbackRamp(detailed, site, 'loopback, detailed camera picture', 'ramp-detailed'));
  } finally {
    await detailed.close();
    await site.close();
  }

  let shaped: ChromiumReport['shaped'];
  const keyframes: KeyframeRow[] = [];
  const why = await netnsSupport();
  if (why) {
    skipped.push(`shaped uplink and keyframe policy: ${why}`);
  } else {
    log(`chromium: shaped uplink, ${PHASE_SECONDS} s at 1.5 Mbit/s, then ${PHASE_SECONDS} s with 2 % loss`);
    shaped = await withLink({ rateKbit: 1500 }, async (link, browser, gw) => {
      const viewer = watchHls(gw.url, 'shaped');
      const marks: { at: number; videoLost: number; dropped: number }[] = [];
      const mark = async (at: number) => {
        const info = await gw.api<{ tracks: { kind: string; lost: number }[] }>('/api/streams/shaped');
        marks.push({ at, videoLost: info.tracks.find((x) => x.kind === 'video')?.lost ?? 0, dropped: await link.dropped() });
      };
      const r = await publishAndSample({
        browser, gw, name: 'shaped', keepOwnCandidates: true, seconds: 2 * PHASE_SECONDS + 2,
        at: [
          { t: 2, run: () => mark(2) },
          { t: PHASE_SECONDS + 2, run: async () => { await mark(PHASE_SECONDS + 2); await link.shape({ rateKbit: 1500, lossPercent: 2 }); } },
          { t: 2 * PHASE_SECONDS + 1.5, run: () => mark(2 * PHASE_SECONDS + 1.5) },
        ],
      }).finally(() => viewer.stop());
      const phaseEnd = PHASE_SECONDS + 2;
      const phase = (label: string, samples: Sample[], end: number, a: (typeof marks)[0], b: (typeof marks)[0]): ShapedPhase => ({
        label,
        settled: windowOf(samples, end - 10),
        videoLost: b.videoLost - a.videoLost,
        droppedByLink: b.dropped - a.dropped,
      });
      const phases = [
        phase('1.5 Mbit/s', r.samples.filter((s) => s.t < phaseEnd), phaseEnd, marks[0], marks[1]),
        phase('1.5 Mbit/s + 2 % loss', r.samples, 2 * PHASE_SECONDS + 2, marks[1], marks[2]),
      ];
      const times = await viewer.videoFrameTimes();
      return { phases, hlsLongestGapSeconds: r1(longestGap(times) * 1000) / 1000, hlsFrames: times.length };
    });
    for (const uplinkKbit of [1500, 500]) {
      for (const segmentSeconds of [1, 2]) {
        log(`chromium: keyframe policy, ${uplinkKbit} kbit/s uplink, ${segmentSeconds} s segments`);
        const r = await withLink({ rateKbit: uplinkKbit }, (_link, browser, gw) => publishAndSample({ browser, gw, name: `kf-${uplinkKbit}-${segmentSeconds}`, keepOwnCandidates: true, seconds: 30 }), { HLS_SEGMENT_SECONDS: String(segmentSeconds) });
        keyframes.push({ uplinkKbit, segmentSeconds, settled: windowOf(r.samples, 10) });
      }
    }
  }
  return { chromium, startup, ramps, shaped, keyframes, skipped };
}

export function printChromium(r: ChromiumReport): string[] {
  const o: string[] = [];
  o.push(`-- 5. Chromium ${r.chromium} publishing (plain getUserMedia + RTCPeerConnection, default sender settings; its own getStats()) --`);
  o.push(`Start-up (1 s HLS segments, goal <= 1500 ms): connected median ${r.startup.connectedMedianMs} ms; first segment median ${r.startup.firstSegmentMedianMs} ms, max ${r.startup.firstSegmentMaxMs} ms (runs: ${r.startup.runs.map((x) => x.firstSegmentMs ?? x.error ?? '-').join(', ')})`);
  o.push('');
  o.push(table(
    ['ramp', 'at 2 s', 'at 5 s', 'at 10 s', 'at 20 s', '960x540 at', '1280x720 at'],
    r.ramps.map((x) => [x.label, ...x.at.map((a) => `${a.size} ${a.targetKbps}/${a.availableKbps}`), x.firstAt['960x540'] === undefined ? 'never' : `${x.firstAt['960x540']} s`, x.firstAt['1280x720'] === undefined ? 'never' : `${x.firstAt['1280x720']} s`]),
  ));
  o.push('(frame size, encoder target / available outgoing bitrate in kbit/s, seconds after the WHIP 201)');
  const windows: [string, Window][] = [...r.ramps.map((x): [string, Window] => [x.label, x.settled]), ...(r.shaped?.phases ?? []).map((p): [string, Window] => [`shaped: ${p.label}`, p.settled]), ...r.keyframes.map((k): [string, Window] => [`${k.uplinkKbit} kbit/s uplink, ${k.segmentSeconds} s segments`, k.settled])];
  o.push('');
  o.push(table(
    ['last 10 s of', 'frame size', 'fps', 'sent kbit/s', 'target', 'available', 'QP', 'PLI/min', 'keyframes/min', 'limited by'],
    windows.map(([label, w]) => [label, w.frameSizes, w.fps, w.sentKbps, w.targetKbps, w.availableKbps, w.qp, w.plisPerMin, w.keyframesPerMin, w.limitedBy]),
  ));
  if (r.shaped) {
    o.push(`Shaped uplink: video packets lost for good at the gateway ${r.shaped.phases.map((p) => `${p.label}: ${p.videoLost} (link dropped ${p.droppedByLink})`).join('; ')}; HLS: ${r.shaped.hlsFrames} video frames, longest gap ${r.shaped.hlsLongestGapSeconds} s`);
  }
  for (const s of r.skipped) o.push(`skipped: ${s}`);
  return o;
}
