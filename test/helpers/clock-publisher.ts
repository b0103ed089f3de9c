import type { Browser, Page } from 'playwright-core';
import { KEEP_LOOPBACK_CANDIDATES_JS, servePage, type PageServer } from './chromium.js';
import { clockLayout, TEXT_AREA } from './clock-decoder.js';

// The glass-to-glass clock publisher: a page that draws the wall clock on a canvas, as the
// block code of clock-decoder.ts (Date.now() in ms, twice, with a checksum) and as text,
// captures it with canvas.captureStream(30) and publishes it over WHIP with a plain
// RTCPeerConnection and default sender settings (no contentHint, no
// degradationPreference), as a user's page would. Audio: a 1 kHz beep of 100 ms at every
// whole second of Date.now() (scheduled on the AudioContext's clock, so within ~10 ms),
// for audio checks later; and a publisher with audio is what /live's probing sees.
//
// The page is served from http://localhost:<port> (a secure context, another origin than
// the gateway's), and keeps only its 127.0.0.1 candidate (see chromium.ts, whose rule
// this repeats: Chromium's wildcard socket advertised as 127.0.0.1).

/**
 * The page's copy of encodeClock() (clock-decoder.ts), kept as plain JavaScript so it runs
 * in the browser untouched by the TypeScript build; test/unit/clock-code.test.ts checks
 * that both give the same bits.
 */
export const PAGE_BITS_JS = String.raw`
function clockBits(value) {
  const bytes = [];
  let v = value;
  for (let i = 0; i < 6; i++) { bytes.unshift(v % 256); v = Math.floor(v / 256); }
  let a = 0, b = 0;
  for (const x of bytes) { a = (a + x) % 255; b = (b + a) % 255; }
  const bits = [];
  for (const byte of [...bytes, b, a]) for (let i = 7; i >= 0; i--) bits.push((byte >> i) & 1);
  return bits;
}
`;

const PAGE_SCRIPT = String.raw`
const LAYOUT = ${JSON.stringify(clockLayout())};
const TEXT_AREA = ${JSON.stringify(TEXT_AREA)};
${PAGE_BITS_JS}
${KEEP_LOOPBACK_CANDIDATES_JS}

let canvas, ctx, pc, resource, stream, audio, drawn = 0, drawing = false;

// Drawn at every animation frame (60 Hz): the code says when this picture was drawn, and
// captureStream takes the latest drawn picture, at most 30 times a second.
function draw() {
  const now = Date.now();
  const W = canvas.width, H = canvas.height;
  const bits = clockBits(now);
  ctx.fillStyle = '#808080';
  ctx.fillRect(0, 0, W, H);
  for (const b of LAYOUT) {
    const white = b.kind === 'white' || (b.kind === 'bit' && bits[b.bit] === 1);
    ctx.fillStyle = white ? '#ffffff' : '#000000';
    const x0 = Math.round(b.rect.x * W), y0 = Math.round(b.rect.y * H);
    ctx.fillRect(x0, y0, Math.round((b.rect.x + b.rect.w) * W) - x0, Math.round((b.rect.y + b.rect.h) * H) - y0);
  }
  ctx.fillStyle = '#202020';
  ctx.fillRect(TEXT_AREA.x * W, TEXT_AREA.y * H, TEXT_AREA.w * W, TEXT_AREA.h * H);
  ctx.fillStyle = '#ffffff';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  ctx.font = 'bold ' + Math.round(H * 0.13) + 'px monospace';
  ctx.fillText(new Date(now).toISOString().slice(11, 23) + ' UTC', W / 2, (TEXT_AREA.y + TEXT_AREA.h / 2) * H);
  drawn++;
}

function loop() {
  if (!drawing) return;
  draw();
  requestAnimationFrame(loop);
}

// A beep at each whole second of Date.now(), scheduled a little ahead on the audio clock.
function beeps() {
  const ac = new AudioContext();
  const osc = ac.createOscillator();
  osc.frequency.value = 1000;
  const gain = ac.createGain();
  gain.gain.value = 0;
  const dest = ac.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  let scheduled = 0;
  const timer = setInterval(() => {
    const next = Math.ceil(Date.now() / 1000) * 1000;
    const ahead = next - Date.now();
    if (next === scheduled || ahead > 400) return;
    const at = ac.currentTime + ahead / 1000;
    gain.gain.setValueAtTime(0.5, at);
    gain.gain.setValueAtTime(0, at + 0.1);
    scheduled = next;
  }, 100);
  return { ac, track: dest.stream.getAudioTracks()[0], stop: () => { clearInterval(timer); ac.close(); } };
}

window.clock = {
  async publish(endpoint, opts) {
    canvas = document.getElementById('clock');
    canvas.width = opts.width;
    canvas.height = opts.height;
    ctx = canvas.getContext('2d');
    drawing = true;
    loop();
    stream = canvas.captureStream(opts.fps);
    if (opts.audio) {
      audio = beeps();
      await audio.ac.resume();
      stream.addTrack(audio.track);
    }
    pc = new RTCPeerConnection({}); // the built-in page's defaults (web/publish.js)
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 5000);
    });
    const res = await fetch(endpoint, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: keepLoopbackCandidates(pc.localDescription.sdp) });
    const answeredAt = Date.now();
    const body = await res.text();
    const loc = res.headers.get('Location');
    resource = loc ? new URL(loc, endpoint).href : undefined;
    if (res.status === 201) await pc.setRemoteDescription({ type: 'answer', sdp: body });
    return { status: res.status, body, location: resource, answeredAt };
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
  async stats() {
    const out = { drawn, state: pc ? pc.connectionState : 'none' };
    if (pc) (await pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video') Object.assign(out, { frameWidth: r.frameWidth, frameHeight: r.frameHeight, framesEncoded: r.framesEncoded, framesPerSecond: r.framesPerSecond, bytesSent: r.bytesSent, targetBitrate: r.targetBitrate, qualityLimitationReason: r.qualityLimitationReason });
    });
    return out;
  },
  async stop() {
    drawing = false;
    const status = resource ? (await fetch(resource, { method: 'DELETE' }).then((r) => r.status, () => 0)) : 0;
    pc?.close();
    stream?.getTracks().forEach((t) => t.stop());
    audio?.stop();
    return status;
  },
};
`;

const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>glass-to-glass clock</title><link rel="icon" href="data:,">
<style>body{margin:0;background:#000}canvas{display:block}</style></head>
<body><canvas id="clock" width="640" height="360"></canvas><script>${PAGE_SCRIPT}</script></body></html>`;

/** Serves the clock page on http://localhost:<free port> (loopback only). */
export function startClockServer(): Promise<PageServer> {
  return servePage('clock.html', PAGE_HTML);
}

export interface ClockOptions {
  width?: number;
  height?: number;
  fps?: number;
  audio?: boolean;
}

export interface ClockPublishResult {
  status: number;
  body: string;
  location?: string;
  /** Date.now() in the page when the WHIP answer's status line arrived. */
  answeredAt: number;
}

/** What the page drew and what Chromium says it sends (getStats outbound-rtp video). */
export interface ClockStats {
  drawn: number;
  state: string;
  frameWidth?: number;
  frameHeight?: number;
  framesEncoded?: number;
  framesPerSecond?: number;
  bytesSent?: number;
  targetBitrate?: number;
  qualityLimitationReason?: string;
}

interface ClockGlobal {
  publish: (endpoint: string, opts: Required<ClockOptions>) => Promise<ClockPublishResult>;
  connected: (timeoutMs: number) => Promise<string>;
  stats: () => Promise<ClockStats>;
  stop: () => Promise<number>;
}

/** One tab drawing and publishing the clock. */
export class ClockPublisher {
  readonly errors: string[] = [];

  private constructor(readonly page: Page) {}

  static async open(browser: Browser, pageUrl: string): Promise<ClockPublisher> {
    const page = await browser.newPage({ viewport: { width: 700, height: 400 } });
    const p = new ClockPublisher(page);
    page.on('pageerror', (e) => p.errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') p.errors.push(`console: ${m.text()}`);
    });
    await page.goto(pageUrl);
    return p;
  }

  /** Starts drawing, offers (127.0.0.1 candidate only), POSTs to the WHIP endpoint, applies the answer on 201. */
  publish(endpoint: string, opts: ClockOptions = {}): Promise<ClockPublishResult> {
    const o: Required<ClockOptions> = { width: 640, height: 360, fps: 30, audio: true, ...opts };
    return this.page.evaluate(([e, x]) => (window as unknown as { clock: ClockGlobal }).clock.publish(e, x), [endpoint, o] as const);
  }

  connected(timeoutMs = 15_000): Promise<string> {
    return this.page.evaluate((t) => (window as unknown as { clock: ClockGlobal }).clock.connected(t), timeoutMs);
  }

  stats(): Promise<ClockStats> {
    return this.page.evaluate(() => (window as unknown as { clock: ClockGlobal }).clock.stats());
  }

  /** DELETE the WHIP session (from the page), stop drawing and sending; returns the DELETE status. */
  stop(): Promise<number> {
    return this.page.evaluate(() => (window as unknown as { clock: ClockGlobal }).clock.stop());
  }

  close(): Promise<void> {
    return this.page.close();
  }
}
