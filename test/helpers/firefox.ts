import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

// A real Firefox (Debian's firefox-esr) publishing over WHIP. playwright-core drives only
// its own patched Firefox builds, so this one is started by hand, headless, with a fresh
// profile whose user.js gives it a fake camera and microphone without asking; its page
// reports back to the test over HTTP (POST /report).
//
// Firefox gathers ICE candidates only on the interface of its default route (it ignores
// loopback, whatever the prefs say), so it runs in a network namespace the test made
// (shaped-link.ts), and the page is served from the test's side of that link, an http://
// origin that is not "potentially trustworthy": the insecure-media prefs let getUserMedia
// run there. OpenH264 is off, as in Debian's package on a machine that never downloaded
// it: Firefox then offers VP8, VP9 and AV1 only.

export const FIREFOX_PATH = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

/** Why Firefox tests cannot run here, or undefined when they can. */
export function firefoxMissing(): string | undefined {
  return existsSync(FIREFOX_PATH) ? undefined : `no Firefox at ${FIREFOX_PATH} (apt-get install firefox-esr)`;
}

const PREFS: Record<string, boolean | string | number> = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.devices.insecure.enabled': true,
  'media.getusermedia.insecure.enabled': true,
  'media.gmp-gmpopenh264.enabled': false,
  'media.gmp-gmpopenh264.autoupdate': false,
  'media.gmp-manager.updateEnabled': false,
  'media.autoplay.default': 0,
  // Host candidates with their address, as Firefox gives them once a user has allowed the
  // camera (permission.disabled above skips that grant, and Firefox would hide them
  // behind mDNS names).
  'media.peerconnection.ice.obfuscate_host_addresses': true,
  // A quiet first start: no network fetches, updates, telemetry or first-run pages.
  'app.update.enabled': false,
  'app.normandy.enabled': false,
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'browser.aboutwelcome.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.search.update': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.reportingpolicy.firstRun': false,
  'extensions.update.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'dom.ipc.processCount': 1,
};

/** What the page tells the test, in order (see PAGE_SCRIPT). */
export interface FirefoxReport {
  step: 'offer' | 'answer' | 'connected' | 'stats' | 'error';
  status?: number;
  sdp?: string;
  state?: string;
  frameWidth?: number;
  frameHeight?: number;
  framesPerSecond?: number;
  /** Stats: the encoder's target, bit/s (Firefox may leave it out). */
  targetBitrate?: number;
  /** Stats: performance.now() in the page. */
  at?: number;
  error?: string;
}

// The WHIP client the page runs: plain getUserMedia + RTCPeerConnection, default settings.
const PAGE_SCRIPT = String.raw`
const params = new URLSearchParams(location.search);
const report = (r) => fetch('/report', { method: 'POST', body: JSON.stringify(r) });
(async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
    const pc = new RTCPeerConnection();
    for (const t of stream.getTracks()) pc.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 5000);
    });
    const offer = pc.localDescription.sdp;
    await report({ step: 'offer', sdp: offer });
    const res = await fetch(params.get('whip'), { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer });
    const answer = await res.text();
    await report({ step: 'answer', status: res.status, sdp: answer });
    if (res.status !== 201) return;
    pc.addEventListener('connectionstatechange', () => report({ step: 'connected', state: pc.connectionState }));
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    setInterval(async () => {
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'outbound-rtp' && r.kind === 'video') report({ step: 'stats', at: Math.round(performance.now()), frameWidth: r.frameWidth, frameHeight: r.frameHeight, framesPerSecond: r.framesPerSecond, targetBitrate: r.targetBitrate });
      });
    }, 1000);
  } catch (e) {
    report({ step: 'error', error: String(e) });
  }
})();
`;

export interface FirefoxPublisher {
  reports: FirefoxReport[];
  /** The first report of `step` (waits up to timeoutMs). */
  next(step: FirefoxReport['step'], timeoutMs?: number, match?: (r: FirefoxReport) => boolean): Promise<FirefoxReport>;
  /** Firefox's stderr (for failure messages). */
  log(): string;
  close(): Promise<void>;
}

/**
 * Starts Firefox in network namespace `ns`, on a page served from `host` (an address of
 * this namespace that `ns` reaches), publishing to `whipUrl`; with `mdnsCandidates`, its
 * host candidates carry mDNS names instead of addresses.
 */
export async function publishWithFirefox(opts: { ns: string; host: string; whipUrl: string; mdnsCandidates?: boolean }): Promise<FirefoxPublisher> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'firefox-'));
  const profile = path.join(dir, 'profile');
  await mkdir(profile);
  const prefs = {
    ...PREFS,
    // Host candidates with their address, as Firefox gives them once a user has allowed the
    // camera; permission.disabled skips that grant, so Firefox would hide them behind mDNS
    // names (`<uuid>.local`), as it does for a page without a grant.
    'media.peerconnection.ice.obfuscate_host_addresses': opts.mdnsCandidates ?? false,
  };
  await writeFile(path.join(profile, 'user.js'), Object.entries(prefs).map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});`).join('\n') + '\n');

  const reports: FirefoxReport[] = [];
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/report') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        try {
          reports.push(JSON.parse(body) as FirefoxReport);
        } catch {
          reports.push({ step: 'error', error: `bad report: ${body.slice(0, 200)}` });
        }
        for (const w of waiters) w();
        res.writeHead(204).end();
      });
      return;
    }
    if (req.url?.startsWith('/publish.html')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Firefox WHIP publisher</title></head><body><script>${PAGE_SCRIPT}</script></body></html>`);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, opts.host, resolve));
  const pageUrl = `http://${opts.host}:${(server.address() as AddressInfo).port}/publish.html?whip=${encodeURIComponent(opts.whipUrl)}`;

  let stderr = '';
  const child: ChildProcess = spawn('ip', ['netns', 'exec', opts.ns, FIREFOX_PATH, '--headless', '--no-remote', '--profile', profile, pageUrl], {
    env: { ...process.env, HOME: dir, MOZ_HEADLESS: '1', MOZ_CRASHREPORTER_DISABLE: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true, // its own process group: close() ends Firefox's content processes too
  });
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const next = (step: FirefoxReport['step'], timeoutMs = 30_000, match: (r: FirefoxReport) => boolean = () => true) =>
    new Promise<FirefoxReport>((resolve, reject) => {
      const check = () => {
        const found = reports.find((r) => r.step === step && match(r)) ?? reports.find((r) => r.step === 'error');
        if (!found) return;
        cleanup();
        if (found.step === 'error') reject(new Error(`Firefox page: ${found.error}`));
        else resolve(found);
      };
      const timer = setTimeout(() => {
        cleanup();
        const seen = reports.filter((r) => r.step !== 'stats' && r.step !== 'offer' && r.step !== 'answer').map((r) => JSON.stringify(r));
        reject(new Error(`no "${step}" report from Firefox in ${timeoutMs} ms; seen: ${seen.join(', ')}; last: ${JSON.stringify(reports.at(-1))}; stderr: ${stderr.slice(-800)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  return {
    reports,
    next,
    log: () => stderr,
    close: async () => {
      // SIGTERM, then SIGKILL of the whole process group if Firefox lingers.
      const signal = (s: NodeJS.Signals) => {
        try {
          if (child.pid) process.kill(-child.pid, s);
        } catch {
          // already gone
        }
      };
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), 5000);
      await exited;
      signal('SIGKILL'); // content processes that outlived the parent
      clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
