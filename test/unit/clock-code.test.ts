import { describe, expect, it } from 'vitest';
import { bitsToValue, CODE_BITS, decodeGray, encodeClock, renderClockGray } from '../helpers/clock-decoder.js';
import { PAGE_BITS_JS } from '../helpers/clock-publisher.js';
import { figures, presentAtPace, type ClockSample } from '../helpers/clock-samples.js';

// The glass-to-glass clock's block code survives what video does to a picture (blur,
// noise, limited range, scaling either way) and refuses what it cannot read; the page's
// own copy of the encoder gives the same bits; the figures pace pictures as a player would.

/** Deterministic noise (a test must not depend on Math.random). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function boxBlur(src: Uint8Array, w: number, h: number, r: number): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let sum = 0;
      let n = 0;
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) {
          const yy = Math.min(h - 1, Math.max(0, y + dy));
          const xx = Math.min(w - 1, Math.max(0, x + dx));
          sum += src[yy * w + xx];
          n++;
        }
      }
      out[y * w + x] = Math.round(sum / n);
    }
  }
  return out;
}

/** Gaussian-ish noise (sum of uniforms) of standard deviation ~sigma, clamped. */
function noise(src: Uint8Array, sigma: number, seed = 1): Uint8Array {
  const rnd = lcg(seed);
  return src.map((v) => Math.min(255, Math.max(0, Math.round(v + (rnd() + rnd() + rnd() - 1.5) * 2 * sigma))));
}

/** Bilinear scaling to another size. */
function scale(src: Uint8Array, w: number, h: number, W: number, H: number): Uint8Array {
  const out = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    const fy = Math.min(h - 1, ((y + 0.5) * h) / H - 0.5);
    const y0 = Math.max(0, Math.floor(fy));
    const y1 = Math.min(h - 1, y0 + 1);
    const ty = Math.max(0, fy - y0);
    for (let x = 0; x < W; x++) {
      const fx = Math.min(w - 1, ((x + 0.5) * w) / W - 0.5);
      const x0 = Math.max(0, Math.floor(fx));
      const x1 = Math.min(w - 1, x0 + 1);
      const tx = Math.max(0, fx - x0);
      const top = src[y0 * w + x0] * (1 - tx) + src[y0 * w + x1] * tx;
      const bottom = src[y1 * w + x0] * (1 - tx) + src[y1 * w + x1] * tx;
      out[y * W + x] = Math.round(top * (1 - ty) + bottom * ty);
    }
  }
  return out;
}

/** Video levels: 0..255 squeezed into 16..235, as a limited-range decode shows them. */
const limitedRange = (src: Uint8Array) => src.map((v) => Math.round(16 + (v * 219) / 255));

const NOW = 1_786_000_000_123; // a December 2026 Date.now()

describe('clock block code', () => {
  it('round-trips values through the bits', () => {
    for (const v of [0, 1, 255, 2 ** 32, NOW, 2 ** 48 - 1]) {
      const bits = encodeClock(v);
      expect(bits).toHaveLength(CODE_BITS);
      expect(bitsToValue(bits)).toBe(v);
    }
    expect(() => encodeClock(2 ** 48)).toThrow(RangeError);
    expect(() => encodeClock(1.5)).toThrow(RangeError);
  });

  it('refuses every single flipped bit (checksum)', () => {
    const bits = encodeClock(NOW);
    for (let i = 0; i < CODE_BITS; i++) {
      const bad = [...bits];
      bad[i] ^= 1;
      expect(bitsToValue(bad), `bit ${i}`).toBeUndefined();
    }
  });

  it('the page encodes exactly as encodeClock does', () => {
    const pageBits = new Function(`${PAGE_BITS_JS}; return clockBits;`)() as (v: number) => number[];
    const rnd = lcg(7);
    for (let i = 0; i < 200; i++) {
      const v = Math.floor(rnd() * 2 ** 48);
      expect(pageBits(v)).toEqual(encodeClock(v));
    }
  });

  it('decodes a clean picture at 640x360', () => {
    expect(decodeGray(renderClockGray(NOW, 640, 360), 640, 360)).toBe(NOW);
  });

  it('decodes after blur, noise and limited range, scaled down, up and out of proportion', () => {
    const src = renderClockGray(NOW + 42, 640, 360);
    const damaged = noise(limitedRange(boxBlur(src, 640, 360, 3)), 18);
    for (const [W, H] of [[320, 180], [480, 270], [1280, 720], [560, 360], [176, 144]]) {
      expect(decodeGray(scale(damaged, 640, 360, W, H), W, H), `${W}x${H}`).toBe(NOW + 42);
    }
  });

  it('reads the other band when one is destroyed', () => {
    const w = 640;
    const h = 360;
    const pic = renderClockGray(NOW, w, h);
    pic.fill(128, 0, Math.round(0.3 * h) * w); // the top band greyed out
    expect(decodeGray(pic, w, h)).toBe(NOW);
    const rnd = lcg(3);
    const bottom = Math.round(0.7 * h) * w;
    for (let i = bottom; i < pic.length; i++) pic[i] = rnd() < 0.5 ? 0 : 255; // and the bottom one scrambled
    expect(decodeGray(pic, w, h)).toBeUndefined();
  });

  it('finds nothing in a flat or noisy picture', () => {
    expect(decodeGray(new Uint8Array(640 * 360).fill(16), 640, 360)).toBeUndefined();
    expect(decodeGray(noise(new Uint8Array(640 * 360).fill(128), 60, 5), 640, 360)).toBeUndefined();
  });
});

describe('clock figures', () => {
  // 30 fps pictures drawn at 1000 + 33.3 k ms; pts on the stream's own clock.
  const pictures = (n: number, arrive: (k: number) => number): ClockSample[] =>
    Array.from({ length: n }, (_, k) => ({ captureMs: 1000 + Math.round((k * 1000) / 30), shownAtMs: arrive(k), ptsMs: 5000 + (k * 1000) / 30 }));

  it('a player paces a burst from where it started, and keeps a stall', () => {
    // 90 pictures (3 s) arrive at once at t = 4200, then live at 1.2 s latency.
    const s = pictures(150, (k) => (k < 90 ? 4200 : 1000 + (k * 1000) / 30 + 1200));
    const paced = presentAtPace(s);
    expect(paced[0].shownAtMs).toBe(4200);
    expect(paced[89].shownAtMs - paced[89].captureMs).toBeCloseTo(3200, -1); // still 3.2 s behind
    expect(paced[149].shownAtMs - paced[149].captureMs).toBeCloseTo(3200, -1); // never catches up
    // A stall of 500 ms at picture 120: from then on 3.7 s.
    const stalled = s.map((x, k) => (k === 120 ? { ...x, shownAtMs: presentAtPace(s)[120].shownAtMs + 500 } : x));
    expect(presentAtPace(stalled)[140].shownAtMs - presentAtPace(stalled)[140].captureMs).toBeCloseTo(3700, -1);
  });

  it('figures skip the start and report the first picture', () => {
    const s = pictures(300, (k) => 20_000 + k * 34); // arrives slower than drawn: growing latency
    const f = figures({ viewer: 'x', startedAt: 19_000, firstPictureAt: 20_000, pictures: 310, samples: [...s, { captureMs: 1, shownAtMs: 99_999 }] });
    expect(f.firstPictureMs).toBe(1000);
    expect(f.decoded).toBe(300);
    expect(f.implausible).toBe(1);
    expect(f.decodedAt?.samples).toBeLessThan(300);
    expect(f.shown.medianMs).toBeGreaterThan(19_000);
  });
});
