import type { Browser, Page } from 'playwright-core';
import { KEEP_LOOPBACK_CANDIDATES_JS } from './chromium.js';

// A WHEP player in a Chromium tab, as a user's page would be: a plain RTCPeerConnection
// with recvonly audio and video transceivers, the offer POSTed once ICE gathering is
// complete, the answer applied, the tracks shown in a <video>. It reads what the browser
// itself says it receives (getStats: frames decoded, audio samples, loss, NACKs, PLIs)
// and when it first presented a picture (requestVideoFrameCallback). The page is served
// by Playwright itself on http://localhost:9 (another origin than the gateway: CORS is
// exercised), and keeps only IPv4 host candidates moved to 127.0.0.1 (see chromium.ts),
// or its own address in a network namespace.

const PAGE_SCRIPT = String.raw`
${KEEP_LOOPBACK_CANDIDATES_JS}
let pc, resource, firstFrameAt, answeredAt, own, frames = 0;
function gathered() {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    setTimeout(resolve, 5000);
  });
}
// An ICE restart's PATCH body (RFC 8840 fragment: the first section's ICE lines) and the
// answer with the gateway's new ICE lines, as web/publish.js builds them for WHIP.
function iceFragmentOf(sdp) {
  const lines = sdp.split(/\r?\n/);
  const start = lines.findIndex((l) => l.startsWith('m='));
  const next = lines.findIndex((l, i) => i > start && l.startsWith('m='));
  const section = lines.slice(start, next < 0 ? undefined : next);
  const first = (prefix) => section.find((l) => l.startsWith(prefix)) ?? lines.find((l) => l.startsWith(prefix));
  return [section[0], first('a=mid:'), first('a=ice-ufrag:'), first('a=ice-pwd:'), ...section.filter((l) => l.startsWith('a=candidate:')), 'a=end-of-candidates', ''].join('\r\n');
}
function withIce(sdp, fragment) {
  const get = (name) => new RegExp('^a=' + name + ':(.*)$', 'm').exec(fragment)?.[1];
  const ufrag = get('ice-ufrag'), pwd = get('ice-pwd');
  const candidates = [...fragment.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')), 'a=end-of-candidates'];
  const out = [];
  let sections = 0;
  for (const line of sdp.split(/\r?\n/)) {
    if (!line || line.startsWith('a=candidate:') || line === 'a=end-of-candidates') continue;
    if (line.startsWith('m=') && sections++ === 1) out.push(...candidates);
    out.push(line.startsWith('a=ice-ufrag:') ? 'a=ice-ufrag:' + ufrag : line.startsWith('a=ice-pwd:') ? 'a=ice-pwd:' + pwd : line);
  }
  if (sections === 1) out.push(...candidates);
  return out.join('\r\n') + '\r\n';
}
const video = document.querySelector('video');
window.whep = {
  async watch(endpoint, opts) {
    pc = new RTCPeerConnection();
    const vt = pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    if (opts.onlyVideo) {
      const wanted = opts.onlyVideo.map((n) => 'video/' + n.toLowerCase());
      vt.setCodecPreferences(RTCRtpReceiver.getCapabilities('video').codecs.filter((c) => wanted.includes(c.mimeType.toLowerCase())));
    }
    const stream = new MediaStream();
    pc.ontrack = (e) => { stream.addTrack(e.track); video.srcObject = stream; };
    const onFrame = (now, meta) => { frames++; firstFrameAt ??= Date.now(); video.requestVideoFrameCallback(onFrame); };
    video.requestVideoFrameCallback(onFrame);
    own = opts.keepOwnCandidates;
    await pc.setLocalDescription(await pc.createOffer());
    await gathered();
    const offer = keepLoopbackCandidates(pc.localDescription.sdp, opts.keepOwnCandidates);
    const headers = { 'Content-Type': 'application/sdp', ...(opts.token ? { Authorization: 'Bearer ' + opts.token } : {}) };
    const postedAt = Date.now();
    const res = await fetch(endpoint, { method: 'POST', headers, body: offer });
    answeredAt = Date.now();
    const body = await res.text();
    const loc = res.headers.get('Location');
    resource = loc ? new URL(loc, endpoint).href : undefined;
    if (res.status === 201) await pc.setRemoteDescription({ type: 'answer', sdp: body });
    return { status: res.status, body, location: resource, etag: res.headers.get('ETag'), link: res.headers.get('Link'), retryAfter: res.headers.get('Retry-After'), offer, postedAt, answeredAt };
  },
  async stats() {
    const out = { state: pc ? pc.connectionState : 'none', dtlsState: pc?.getReceivers()[0]?.transport?.state, firstFrameAt, answeredAt, presented: frames };
    if (!pc) return out;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') Object.assign(out, { framesDecoded: r.framesDecoded, keyFramesDecoded: r.keyFramesDecoded, frameWidth: r.frameWidth, frameHeight: r.frameHeight, videoPacketsLost: r.packetsLost, videoPacketsReceived: r.packetsReceived, nackCount: r.nackCount, pliCount: r.pliCount, firCount: r.firCount, freezeCount: r.freezeCount, jitterBufferDelay: r.jitterBufferDelay, jitterBufferEmittedCount: r.jitterBufferEmittedCount, videoCodec: r.codecId, retransmittedPacketsReceived: r.retransmittedPacketsReceived });
      if (r.type === 'inbound-rtp' && r.kind === 'audio') Object.assign(out, { audioPacketsReceived: r.packetsReceived, totalSamplesReceived: r.totalSamplesReceived, audioLevel: r.audioLevel, concealedSamples: r.concealedSamples });
      if (r.type === 'codec') (out.codecs ??= []).push(r.mimeType);
    });
    return out;
  },
  async restart(ifMatch) {
    pc.restartIce();
    // The next gathering (the state may still say "complete" from the last one when the offer is set).
    const next = new Promise((resolve) => {
      const done = () => pc.iceGatheringState === 'complete' && resolve();
      pc.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, 3000);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await next;
    const res = await fetch(resource, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': ifMatch }, body: iceFragmentOf(keepLoopbackCandidates(pc.localDescription.sdp, own)) });
    const body = await res.text();
    if (res.status === 200) await pc.setRemoteDescription({ type: 'answer', sdp: withIce(pc.remoteDescription.sdp, body) });
    return { status: res.status, etag: res.headers.get('ETag'), body };
  },
  async stop() {
    const status = resource ? (await fetch(resource, { method: 'DELETE', headers: window.__token ? { Authorization: 'Bearer ' + window.__token } : {} })).status : 0;
    pc?.close();
    return status;
  },
};
`;

const PAGE_HTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>e2e WHEP viewer</title></head>
<body><video autoplay muted playsinline width="640" height="360"></video><script>${PAGE_SCRIPT}</script></body></html>`;

export interface WatchOptions {
  token?: string;
  /** Only these video codecs are offered (setCodecPreferences), e.g. ['H264']. */
  onlyVideo?: string[];
  /** Keep the page's own host candidates (Chromium in a network namespace). */
  keepOwnCandidates?: boolean;
}

export interface WatchResult {
  status: number;
  body: string;
  location?: string;
  etag: string | null;
  link: string | null;
  retryAfter: string | null;
  offer: string;
  /** Date.now() in the page around the POST. */
  postedAt: number;
  answeredAt: number;
}

export interface ViewerStats {
  state: string;
  /** The DTLS transport's state ("closed" once the gateway sent close_notify). */
  dtlsState?: string;
  /** Date.now() in the page when the first picture was presented. */
  firstFrameAt?: number;
  answeredAt?: number;
  presented: number;
  framesDecoded?: number;
  keyFramesDecoded?: number;
  frameWidth?: number;
  frameHeight?: number;
  videoPacketsLost?: number;
  videoPacketsReceived?: number;
  retransmittedPacketsReceived?: number;
  nackCount?: number;
  pliCount?: number;
  freezeCount?: number;
  audioPacketsReceived?: number;
  totalSamplesReceived?: number;
  audioLevel?: number;
  concealedSamples?: number;
  codecs?: string[];
}

declare global {
  interface Window {
    whep: {
      watch: (endpoint: string, opts: WatchOptions) => Promise<WatchResult>;
      stats: () => Promise<ViewerStats>;
      restart: (ifMatch: string) => Promise<{ status: number; etag: string | null; body: string }>;
      stop: () => Promise<number>;
    };
  }
}

export class WhepViewer {
  private constructor(readonly page: Page) {}

  readonly errors: string[] = [];

  static async open(browser: Browser): Promise<WhepViewer> {
    const url = 'http://localhost:9/viewer.html';
    const page = await browser.newPage();
    const v = new WhepViewer(page);
    page.on('pageerror', (e) => v.errors.push(`pageerror: ${e.message}`));
    await page.route(url, (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE_HTML }));
    await page.goto(url);
    return v;
  }

  watch(endpoint: string, opts: WatchOptions = {}): Promise<WatchResult> {
    return this.page.evaluate(([e, o]) => window.whep.watch(e, o), [endpoint, opts] as const);
  }

  stats(): Promise<ViewerStats> {
    return this.page.evaluate(() => window.whep.stats());
  }

  /** An ICE restart over WHEP PATCH (RFC 9725 §4.3.2, as WHIP): the new credentials and candidates, the gateway's in the 200 applied. */
  restart(ifMatch = '*'): Promise<{ status: number; etag: string | null; body: string }> {
    return this.page.evaluate((m) => window.whep.restart(m), ifMatch);
  }

  stop(): Promise<number> {
    return this.page.evaluate(() => window.whep.stop());
  }

  async close(): Promise<void> {
    await this.page.close().catch(() => undefined);
  }
}
