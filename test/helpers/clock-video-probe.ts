import type { Browser } from 'playwright-core';
import { decodeMeans, sampleRects } from './clock-decoder.js';
import type { ClockSample, ViewerRun } from './clock-samples.js';

// A Chromium viewer of the glass-to-glass clock: any page that plays the stream in a
// <video> (the gateway's own /watch/<name>, a WHEP player later). A script added before
// the page's own finds the first <video>; at every picture it presents
// (requestVideoFrameCallback) it draws that picture onto a small canvas and takes the
// mean luma of each block of the code. The page keeps (presentation time, means); this
// side reads them every half second and decodes them with clock-decoder.ts, so the code
// is read by the same TypeScript as ffmpeg's pictures. The presentation time is the
// callback's expectedDisplayTime on the page's clock (performance.timeOrigin + ms), the
// same wall clock as the publisher's Date.now().

/** The picture is read at this size (the code is relative to the size; small is cheap). */
const PROBE_WIDTH = 320;
const PROBE_HEIGHT = 180;

/** The script watchVideoPage() adds to a page, for a page opened some other way (page.addInitScript). */
export function videoProbeScript(): string {
  const rects = sampleRects(PROBE_WIDTH, PROBE_HEIGHT);
  return String.raw`(() => {
  const RECTS = ${JSON.stringify(rects)}, W = ${PROBE_WIDTH}, H = ${PROBE_HEIGHT};
  const state = { frames: [], firstAt: undefined, errors: [], attached: false };
  window.__clockProbe = { take() { const frames = state.frames; state.frames = []; return { frames, firstAt: state.firstAt, errors: state.errors.splice(0), attached: state.attached }; } };
  function attach(video) {
    state.attached = true;
    const canvas = document.createElement('canvas');
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const onFrame = (now, meta) => {
      // expectedDisplayTime: when the compositor shows it; the callback time if it is missing or odd.
      const t = meta.expectedDisplayTime && Math.abs(meta.expectedDisplayTime - now) < 100 ? meta.expectedDisplayTime : now;
      const shownAt = performance.timeOrigin + t;
      if (state.firstAt === undefined) state.firstAt = shownAt;
      try {
        ctx.drawImage(video, 0, 0, W, H);
        const px = ctx.getImageData(0, 0, W, H).data;
        const means = RECTS.map((r) => {
          let sum = 0;
          for (let y = r.y; y < r.y + r.h; y++) for (let x = r.x; x < r.x + r.w; x++) {
            const i = (y * W + x) * 4;
            sum += (px[i] * 77 + px[i + 1] * 150 + px[i + 2] * 29) >> 8;
          }
          return sum / (r.w * r.h);
        });
        if (state.frames.length < 10000) state.frames.push({ shownAt, means });
      } catch (e) {
        if (state.errors.length < 20) state.errors.push(String(e));
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
  const find = () => { const v = document.querySelector('video'); if (v) attach(v); else setTimeout(find, 20); };
  find();
})();`;
}

interface Taken {
  frames: { shownAt: number; means: number[] }[];
  firstAt?: number;
  errors: string[];
  attached: boolean;
}

export interface VideoPageOptions {
  viewer: string;
  /** The page to open (it must play the stream in a <video>). */
  url: string;
  /** How long to watch after the first picture. */
  seconds: number;
  firstPictureTimeoutMs?: number;
  /** More scripts to add before the page's own (whep-page-shim.ts for a WHEP page). */
  initScripts?: string[];
}

/** Opens the page in a new tab, reads every picture it presents, closes the tab. */
export async function watchVideoPage(browser: Browser, o: VideoPageOptions): Promise<ViewerRun> {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  const run: ViewerRun = { viewer: o.viewer, startedAt: Date.now(), pictures: 0, samples: [] };
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  try {
    await page.addInitScript(videoProbeScript());
    for (const script of o.initScripts ?? []) await page.addInitScript(script);
    run.startedAt = Date.now();
    await page.goto(o.url);
    const deadline = run.startedAt + (o.firstPictureTimeoutMs ?? 30_000);
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const t = await page.evaluate(() => (window as unknown as { __clockProbe: { take: () => Taken } }).__clockProbe.take());
      errors.push(...t.errors);
      run.firstPictureAt ??= t.firstAt === undefined ? undefined : Math.round(t.firstAt);
      run.pictures += t.frames.length;
      for (const f of t.frames) {
        const value = decodeMeans(f.means);
        if (value !== undefined) run.samples.push({ captureMs: value, shownAtMs: f.shownAt } satisfies ClockSample);
      }
      if (run.firstPictureAt === undefined && Date.now() > deadline) {
        run.error = `no picture within ${Date.now() - run.startedAt} ms${t.attached ? '' : ' (no <video> on the page)'}${errors.length ? `; ${errors.slice(0, 3).join(' | ')}` : ''}`;
        break;
      }
      if (run.firstPictureAt !== undefined && Date.now() > run.firstPictureAt + o.seconds * 1000) break;
    }
    if (errors.length) run.notes = [...new Set(errors)].slice(0, 5);
    const whep = await page.evaluate(() => (window as unknown as { __whep?: { answeredAt?: number } }).__whep).catch(() => undefined);
    if (whep?.answeredAt) run.answeredAt = whep.answeredAt;
    return run;
  } finally {
    await page.close().catch(() => undefined);
  }
}
