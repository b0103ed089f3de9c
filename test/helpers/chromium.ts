import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';

// Real headless Chromium for end-to-end tests: the Debian build at /usr/bin/chromium with
// fake camera/microphone, and a tiny WHIP client page served from its own origin
// (http://localhost:<port>, a secure context for getUserMedia, and a different origin
// than the gateway's http://127.0.0.1:<port>, so CORS is exercised for real).
//
// The page publishes as the built-in publish page (web/publish.js) does, unless a test
// asks otherwise and says why: `new RTCPeerConnection()` with the default bundle policy
// ("balanced"), H.264 with packetization-mode=1 moved to the front of the video codecs
// (setCodecPreferences), no contentHint, no degradationPreference, no encodings, and the
// camera asked for with `ideal` constraints (default 1280x720 at 30 fps, as the page asks).
//
// What it does NOT do as a user's browser would: its candidates. Media must stay on
// 127.0.0.1; this machine's eth0 addresses must never carry media in tests. With the IP
// handling policy "default_public_and_private_interfaces" (a launch switch below)
// Chromium does not enumerate interfaces: per transport (with the default bundle policy,
// the audio and the video section each have one until the answer bundles them) it gathers
// one UDP candidate per address family, on a socket bound to the wildcard address, and
// advertises it under the default route's address (eth0's, and an IPv6 one). So before
// the offer leaves the page, keepCandidates():
//   - rewrites each IPv4 UDP host candidate's address, and every c= line, to 127.0.0.1,
//     keeping its port: the wildcard socket is reachable there, and the kernel picks
//     127.0.0.1 as the source of Chromium's packets to the gateway's 127.0.0.1 candidate,
//     so the gateway sees the address it was told (no peer-reflexive eth0 address);
//   - drops every other candidate (the IPv6 one).
// Nothing else in the offer changes (chromium-publish.test.ts compares it with the one
// Chromium made). Chromium's own getStats still lists its host candidate on eth0's
// address, and on the selected pair a peer-reflexive 127.0.0.1 (from the gateway's
// answers to its checks); the gateway's view, the selected pair in the API that tests
// assert, is 127.0.0.1 on both sides.
//
// Why the rewrite is needed: told eth0's address, the gateway checks it, the check
// arrives (the kernel carries it over lo to the wildcard socket), and a pair to eth0's
// address can be selected, with RTCP addressed to it (in one run without the rewrite the
// gateway happened to pair with a peer-reflexive 127.0.0.1 instead). With interface
// enumeration instead of this policy, Chromium prefers its eth0 socket to the loopback
// one (network cost) and sends from eth0's address. The other way to keep media off
// eth0, Chromium in a network namespace whose only route to the gateway is a veth pair
// (shaped-link.ts, two-links.ts, with keepOwnCandidates), needs root and a gateway
// listening off loopback without credentials, and would make every Chromium test skip
// without root; it is used where the link itself is under test.

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // A fake camera at 30 fps, as a real one runs (Chromium's fake device defaults to 20).
  '--use-fake-device-for-media-stream=fps=30',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  // Raw IPs instead of mDNS .local names; one wildcard-bound UDP socket (see above).
  '--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks',
  '--webrtc-ip-handling-policy=default_public_and_private_interfaces',
  // Pages in the background (several per browser) must keep encoding and playing.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

export interface LaunchOptions {
  /**
   * A video file the fake camera plays instead of Chromium's own pattern (see
   * fake-camera.ts): moving detail that needs megabits, as a real camera's picture does.
   */
  cameraFile?: string;
  /** Another executable (a wrapper that enters a network namespace). */
  executablePath?: string;
  /** More switches, after (and so over) the ones above. */
  extraArgs?: string[];
}

export function chromiumArgs(opts: LaunchOptions = {}): string[] {
  return [...CHROMIUM_ARGS, ...(opts.cameraFile ? [`--use-file-for-fake-video-capture=${opts.cameraFile}`] : []), ...(opts.extraArgs ?? [])];
}

export function launchChromium(opts: LaunchOptions = {}): Promise<Browser> {
  return chromium.launch({ executablePath: opts.executablePath ?? CHROMIUM_PATH, args: chromiumArgs(opts), timeout: 30_000 });
}

/**
 * What the page's WHIP client is asked to publish. Left out, each is what the built-in
 * publish page (web/publish.js) does; a test that sets one says why.
 */
export interface PublishOptions {
  /**
   * The camera's size (getUserMedia `ideal` width and height, 30 fps, as the page asks;
   * the fake camera gives any size); false = no camera. Default 1280x720, the page's.
   */
  video?: false | { width: number; height: number };
  /** Microphone (default true). */
  audio?: boolean;
  /** Audio codec to move to the front with setCodecPreferences (e.g. 'PCMU'). The page leaves audio in Chromium's order (Opus first). */
  preferAudio?: string;
  /** Only these video codecs are offered (setCodecPreferences), e.g. ['VP8']; instead of the page's "H.264 first". */
  onlyVideo?: string[];
  /** Receive-only transceivers instead of sending tracks (no getUserMedia). */
  recvOnly?: boolean;
  /** A data channel and nothing else (no audio or video m-section). */
  dataChannelOnly?: boolean;
  /** Host candidates to keep (IPv4 UDP), rewritten to this address; default 127.0.0.1 (see the top of this file). */
  candidateAddress?: string;
  /** Keep host candidates on their own address instead (Chromium in a network namespace). */
  keepOwnCandidates?: boolean;
}

export interface PublishResult {
  status: number;
  /** Absolute URL of the WHIP session resource (Location resolved against the endpoint). */
  location?: string;
  /** Answer SDP on 201, the error text otherwise. */
  body: string;
  /** The offer as POSTed (after the candidate filter). */
  offer: string;
  /** The offer as Chromium made it (before the candidate filter). */
  generated: string;
  /** Date.now() in the page when the answer's status line arrived. */
  answeredAt: number;
}

// The WHIP client that runs in the page: plain browser APIs, as a user's page would have.
// Kept as a string so it runs in the browser untouched by the TypeScript build.
const PAGE_SCRIPT = String.raw`
// Only IPv4 UDP host candidates, moved to 127.0.0.1 (see the comment at the top of
// chromium.ts: media must stay on loopback), or kept on their own address (opts.keepOwnCandidates).
function keepCandidates(sdp, opts) {
  const to = opts.candidateAddress || '127.0.0.1';
  return sdp
    .split('\r\n')
    .flatMap((l) => {
      if (l.startsWith('c=IN IP') && !opts.keepOwnCandidates) return ['c=IN IP4 ' + to];
      if (!l.startsWith('a=candidate:')) return [l];
      const f = l.split(' ');
      if (f[2].toLowerCase() !== 'udp' || !/^\d+\.\d+\.\d+\.\d+$/.test(f[4]) || f[7] !== 'host') return [];
      if (!opts.keepOwnCandidates) f[4] = to;
      return [f.join(' ')];
    })
    .join('\r\n');
}
let pc, resource, stream, generated;

async function makeOffer(opts) {
  pc?.close();
  stream?.getTracks().forEach((t) => t.stop());
  resource = undefined;
  // As web/publish.js: no configuration but its ICE servers (none here), so the default bundle policy.
  pc = new RTCPeerConnection({});
  if (opts.dataChannelOnly) {
    pc.createDataChannel('only-data');
  } else if (opts.recvOnly) {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  } else {
    // The page's constraints (ideal, not exact), at the test's camera size.
    const video = opts.video === false ? false : { width: { ideal: opts.video?.width ?? 1280 }, height: { ideal: opts.video?.height ?? 720 }, frameRate: { ideal: 30 } };
    stream = await navigator.mediaDevices.getUserMedia({ video, audio: opts.audio !== false });
    for (const track of stream.getTracks()) {
      const t = pc.addTransceiver(track, { direction: 'sendonly' }); // as web/publish.js
      const caps = RTCRtpSender.getCapabilities(track.kind).codecs;
      if (track.kind === 'audio' && opts.preferAudio) {
        const first = caps.filter((c) => c.mimeType.toLowerCase() === 'audio/' + opts.preferAudio.toLowerCase());
        t.setCodecPreferences([...first, ...caps.filter((c) => !first.includes(c))]);
      }
      if (track.kind === 'video' && opts.onlyVideo) {
        const wanted = opts.onlyVideo.map((n) => 'video/' + n.toLowerCase());
        t.setCodecPreferences(caps.filter((c) => wanted.includes(c.mimeType.toLowerCase()) || c.mimeType === 'video/rtx'));
      } else if (track.kind === 'video') {
        // web/publish.js: H.264 with packetization-mode=1 first, the rest after it.
        const h264 = caps.filter((c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
        if (h264.length) t.setCodecPreferences([...h264, ...caps.filter((c) => !h264.includes(c))]);
      }
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    setTimeout(resolve, 5000);
  });
  generated = pc.localDescription.sdp;
  return keepCandidates(generated, opts);
}

window.whip = {
  makeOffer,
  async publish(endpoint, opts) {
    const offer = await makeOffer(opts);
    const res = await fetch(endpoint, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer });
    const answeredAt = Date.now();
    const body = await res.text();
    const loc = res.headers.get('Location');
    resource = loc ? new URL(loc, endpoint).href : undefined;
    if (res.status === 201) await pc.setRemoteDescription({ type: 'answer', sdp: body });
    return { status: res.status, location: resource, body, offer, generated, answeredAt };
  },
  connected(timeoutMs) {
    return new Promise((resolve, reject) => {
      if (pc.connectionState === 'connected') return resolve('connected');
      const timer = setTimeout(() => reject(new Error('not connected after ' + timeoutMs + ' ms: ' + pc.connectionState)), timeoutMs);
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') { clearTimeout(timer); resolve('connected'); }
        if (pc.connectionState === 'failed') { clearTimeout(timer); reject(new Error('connection failed')); }
      });
    });
  },
  state() {
    return pc ? pc.connectionState : 'none';
  },
  async framesSent() {
    let frames = 0;
    (await pc.getStats()).forEach((r) => { if (r.type === 'outbound-rtp' && r.kind === 'video') frames += r.framesEncoded ?? 0; });
    return frames;
  },
  // What the browser itself says it sends (the same numbers chrome://webrtc-internals shows).
  async senderStats() {
    const report = await pc.getStats();
    const out = { at: performance.now() };
    let pairId;
    report.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
    });
    report.forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        Object.assign(out, {
          frameWidth: r.frameWidth, frameHeight: r.frameHeight, framesPerSecond: r.framesPerSecond,
          targetBitrate: r.targetBitrate, bytesSent: r.bytesSent, headerBytesSent: r.headerBytesSent,
          retransmittedBytesSent: r.retransmittedBytesSent, packetsSent: r.packetsSent, timestamp: r.timestamp,
          qualityLimitationReason: r.qualityLimitationReason, pliCount: r.pliCount, firCount: r.firCount,
          nackCount: r.nackCount, keyFramesEncoded: r.keyFramesEncoded, framesEncoded: r.framesEncoded,
          qpSum: r.qpSum, encoderImplementation: r.encoderImplementation,
        });
      }
      if (r.type === 'remote-inbound-rtp' && r.kind === 'video') Object.assign(out, { remotePacketsLost: r.packetsLost, remoteFractionLost: r.fractionLost, remoteRtt: r.roundTripTime });
      if (r.type === 'candidate-pair' && (r.id === pairId || (!pairId && r.nominated))) {
        Object.assign(out, { availableOutgoingBitrate: r.availableOutgoingBitrate, currentRoundTripTime: r.currentRoundTripTime });
      }
    });
    return out;
  },
  // What a browser does by itself when its bandwidth estimate or CPU changes: send a smaller picture.
  async scaleVideoDown(factor) {
    const sender = pc.getSenders().find((s) => s.track?.kind === 'video');
    const p = sender.getParameters();
    p.encodings = p.encodings.map((e) => ({ ...e, scaleResolutionDownBy: factor }));
    await sender.setParameters(p);
  },
  async stop() {
    const status = resource ? (await fetch(resource, { method: 'DELETE' })).status : 0;
    pc?.close();
    stream?.getTracks().forEach((t) => t.stop());
    return status;
  },
};
`;

const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>e2e WHIP publisher</title></head>
<body><h1>e2e WHIP publisher</h1><script>${PAGE_SCRIPT}</script></body></html>`;

export interface PageServer {
  /** e.g. http://localhost:43123 */
  origin: string;
  /** The publisher page. */
  url: string;
  close: () => Promise<void>;
}

/** Serves one page at http://localhost:<free port>/<file> (loopback only; a secure context for getUserMedia). */
export async function servePage(file: string, html: string): Promise<PageServer> {
  const server = http.createServer((req, res) => {
    if (req.url === `/${file}`) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://localhost:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    url: `${origin}/${file}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Serves the WHIP client page on http://localhost:<free port> (another origin than the gateway). */
export function startPageServer(): Promise<PageServer> {
  return servePage('publisher.html', PAGE_HTML);
}

interface WhipGlobal {
  makeOffer: (opts: PublishOptions) => Promise<string>;
  publish: (endpoint: string, opts: PublishOptions) => Promise<PublishResult>;
  connected: (timeoutMs: number) => Promise<string>;
  state: () => string;
  framesSent: () => Promise<number>;
  senderStats: () => Promise<SenderStats>;
  scaleVideoDown: (factor: number) => Promise<void>;
  stop: () => Promise<number>;
}

/** Chromium's own view of what it sends (getStats(): outbound-rtp video and the selected candidate pair). */
export interface SenderStats {
  /** performance.now() in the page when read. */
  at: number;
  frameWidth?: number;
  frameHeight?: number;
  framesPerSecond?: number;
  /** The encoder's target, bit/s. */
  targetBitrate?: number;
  bytesSent?: number;
  headerBytesSent?: number;
  retransmittedBytesSent?: number;
  packetsSent?: number;
  /** getStats timestamp (ms). */
  timestamp?: number;
  qualityLimitationReason?: 'none' | 'bandwidth' | 'cpu' | 'other';
  pliCount?: number;
  firCount?: number;
  nackCount?: number;
  keyFramesEncoded?: number;
  framesEncoded?: number;
  qpSum?: number;
  encoderImplementation?: string;
  remotePacketsLost?: number;
  remoteFractionLost?: number;
  remoteRtt?: number;
  /** The sender's bandwidth estimate, bit/s. */
  availableOutgoingBitrate?: number;
  currentRoundTripTime?: number;
}

declare global {
  interface Window {
    whip: WhipGlobal;
  }
}

/** One browser tab running the WHIP client page. */
export class PublisherPage {
  private constructor(readonly page: Page) {}

  /** Console errors and page errors, for failure messages. */
  readonly errors: string[] = [];

  /**
   * The same page without a server: Playwright answers the request itself. For a browser
   * in a network namespace, which cannot reach this process's loopback.
   */
  static async openServed(browser: Browser): Promise<PublisherPage> {
    const url = 'http://localhost:9/publisher.html';
    const page = await browser.newPage();
    await page.route(url, (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE_HTML }));
    return PublisherPage.open(browser, url, page);
  }

  static async open(browser: Browser, pageUrl: string, existing?: Page): Promise<PublisherPage> {
    const page = existing ?? (await browser.newPage());
    const p = new PublisherPage(page);
    page.on('pageerror', (e) => p.errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') p.errors.push(`console: ${m.text()}`);
    });
    await page.goto(pageUrl);
    return p;
  }

  /** getUserMedia + offer (loopback candidates only), without sending it anywhere. */
  makeOffer(opts: PublishOptions = {}): Promise<string> {
    return this.page.evaluate((o) => window.whip.makeOffer(o), opts);
  }

  /** Offer, POST to the WHIP endpoint, apply the answer on 201. */
  publish(endpoint: string, opts: PublishOptions = {}): Promise<PublishResult> {
    return this.page.evaluate(([e, o]) => window.whip.publish(e, o), [endpoint, opts] as const);
  }

  connected(timeoutMs = 15_000): Promise<string> {
    return this.page.evaluate((t) => window.whip.connected(t), timeoutMs);
  }

  state(): Promise<string> {
    return this.page.evaluate(() => window.whip.state());
  }

  framesSent(): Promise<number> {
    return this.page.evaluate(() => window.whip.framesSent());
  }

  senderStats(): Promise<SenderStats> {
    return this.page.evaluate(() => window.whip.senderStats());
  }

  /** Sends the video `factor` times smaller (RTCRtpSender.setParameters scaleResolutionDownBy). */
  scaleVideoDown(factor: number): Promise<void> {
    return this.page.evaluate((f) => window.whip.scaleVideoDown(f), factor);
  }

  /** DELETE the session resource from the page (CORS), close the peer; returns the DELETE status. */
  stop(): Promise<number> {
    return this.page.evaluate(() => window.whip.stop());
  }

  close(): Promise<void> {
    return this.page.close();
  }
}

/**
 * The same rewrite in a test page's own JavaScript (pages that make their own offers put
 * it in their script): `keepLoopbackCandidates(sdp, own)` keeps only IPv4 UDP host
 * candidates and moves them and every c= line to 127.0.0.1, or with `own` keeps their
 * addresses (Chromium in a network namespace of its own).
 */
export const KEEP_LOOPBACK_CANDIDATES_JS = String.raw`function keepLoopbackCandidates(sdp, own) {
  return sdp.split('\r\n').flatMap((l) => {
    if (l.startsWith('c=IN IP') && !own) return ['c=IN IP4 127.0.0.1'];
    if (!l.startsWith('a=candidate:')) return [l];
    const f = l.split(' ');
    if (f[2].toLowerCase() !== 'udp' || !/^\d+\.\d+\.\d+\.\d+$/.test(f[4]) || f[7] !== 'host') return [];
    if (!own) f[4] = '127.0.0.1';
    return [f.join(' ')];
  }).join('\r\n');
}`;

/** One a=candidate line: the IPv4 UDP host candidate moved to 127.0.0.1, others dropped. */
export function loopbackCandidateLine(line: string): string | undefined {
  const f = line.split(' ');
  if (f[2]?.toLowerCase() !== 'udp' || !/^\d+\.\d+\.\d+\.\d+$/.test(f[4] ?? '') || f[7] !== 'host') return undefined;
  f[4] = '127.0.0.1';
  return f.join(' ');
}

/**
 * A message of the built-in page's WebSocket signalling with its candidate moved to
 * loopback (undefined: a candidate to drop), for a test that routes the page's /ws
 * (page.routeWebSocket) so that its media stays on 127.0.0.1.
 */
export function loopbackCandidate(message: string): string | undefined {
  let msg: { type?: string; candidate?: { candidate?: string } | null; sdp?: string };
  try {
    msg = JSON.parse(message) as typeof msg;
  } catch {
    return message;
  }
  if (msg.type === 'candidate' && msg.candidate?.candidate) {
    const line = loopbackCandidateLine(msg.candidate.candidate);
    if (!line) return undefined;
    msg.candidate.candidate = line;
    return JSON.stringify(msg);
  }
  if (msg.type === 'publish' && msg.sdp) {
    msg.sdp = msg.sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:')).join('\r\n');
    return JSON.stringify(msg);
  }
  return message;
}

/** The page's /ws messages go through loopbackCandidate, so its media stays on 127.0.0.1 (whichever node's /ws it opens). */
export async function loopbackOnly(page: Page): Promise<void> {
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      const out = loopbackCandidate(String(m));
      if (out !== undefined) server.send(out);
    });
    server.onMessage((m) => ws.send(String(m)));
  });
}
