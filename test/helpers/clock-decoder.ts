// The block code of the glass-to-glass clock (clock-publisher.ts draws it, the viewers in
// clock-ffmpeg.ts and clock-video-probe.ts read it back). Pure functions, no I/O.
//
// A value is the publisher's Date.now() in ms: 48 bits (good for 8,900 years), then a
// Fletcher-16 checksum of its six bytes, 64 bits in all. They are drawn as two rows of 32
// black (0) or white (1) blocks, each row between a black and a white reference block (the
// threshold is taken between the two, so limited-range video, a dark encoder or a scaled
// picture decode alike). The same two rows are drawn twice, near the top and near the
// bottom: a band damaged by the encoder (the text between them moves every frame) leaves
// the other one. Blocks are 1/36 of the width and a tenth of the height: about 18x36 px at
// 640x360, large enough to survive H.264 at a few hundred kbit/s and scaling to 320x180.
// Everything is relative to the picture's size, so any scale decodes.

export const VALUE_BITS = 48;
export const CODE_BITS = 64;
/** Columns across the picture: a margin, reference, 32 bits, reference, margin. */
const COLUMNS = 36;
const ROW_HEIGHT = 0.1;
/** Top of each band's first row (fractions of the height); each band has two rows. */
const BANDS = [0.03, 0.75];
/** The part of a block that is sampled: its centre, away from blurred edges. */
const SAMPLE_SHARE = 0.5;
/** White minus black reference below this: no code there (a black or grey picture). */
const MIN_CONTRAST = 40;

/** A rectangle in fractions of the picture (0..1). */
export interface RelRect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Block {
  /** 0 = black reference, 1 = white reference, or the code bit it carries. */
  kind: 'black' | 'white' | 'bit';
  band: number;
  row: number;
  /** Index into encodeClock()'s bits, for kind 'bit'. */
  bit: number;
  rect: RelRect;
}

/**
 * Every block in a fixed order (band, row, column). Row 0 has black on the left and white
 * on the right, row 1 the other way round, so a row read mirrored or inverted fails.
 */
export function clockLayout(): Block[] {
  const w = 1 / COLUMNS;
  const blocks: Block[] = [];
  BANDS.forEach((top, band) => {
    for (let row = 0; row < 2; row++) {
      const y = top + row * ROW_HEIGHT;
      const [left, right]: Block['kind'][] = row === 0 ? ['black', 'white'] : ['white', 'black'];
      blocks.push({ kind: left, band, row, bit: -1, rect: { x: w, y, w, h: ROW_HEIGHT } });
      for (let i = 0; i < 32; i++) blocks.push({ kind: 'bit', band, row, bit: row * 32 + i, rect: { x: (2 + i) * w, y, w, h: ROW_HEIGHT } });
      blocks.push({ kind: right, band, row, bit: -1, rect: { x: 34 * w, y, w, h: ROW_HEIGHT } });
    }
  });
  return blocks;
}

/** Where the text goes: between the bands. */
export const TEXT_AREA: RelRect = { x: 0.05, y: 0.3, w: 0.9, h: 0.4 };

/** Fletcher-16 over bytes (mod 255 sums): catches every single-bit and most burst errors. */
export function fletcher16(bytes: number[]): number {
  let a = 0;
  let b = 0;
  for (const x of bytes) {
    a = (a + x) % 255;
    b = (b + a) % 255;
  }
  return (b << 8) | a;
}

/** The six bytes of a 48-bit value, most significant first (no 32-bit bit operations: JS). */
function valueBytes(value: number): number[] {
  const bytes: number[] = [];
  let v = value;
  for (let i = 0; i < 6; i++) {
    bytes.unshift(v % 256);
    v = Math.floor(v / 256);
  }
  return bytes;
}

/** 64 bits (0/1): the value's 48 bits, most significant first, then its checksum's 16. */
export function encodeClock(valueMs: number): number[] {
  if (!Number.isInteger(valueMs) || valueMs < 0 || valueMs >= 2 ** VALUE_BITS) throw new RangeError(`not a 48-bit value: ${valueMs}`);
  const bytes = valueBytes(valueMs);
  const bits: number[] = [];
  for (const byte of [...bytes, ...((c) => [c >> 8, c & 255])(fletcher16(bytes))]) {
    for (let i = 7; i >= 0; i--) bits.push((byte >> i) & 1);
  }
  return bits;
}

/** The value the bits carry, or undefined when the checksum does not match. */
export function bitsToValue(bits: number[]): number | undefined {
  if (bits.length !== CODE_BITS) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < 8; i++) bytes.push(bits.slice(i * 8, i * 8 + 8).reduce((acc, b) => acc * 2 + b, 0));
  const value = bytes.slice(0, 6).reduce((acc, b) => acc * 256 + b, 0);
  return fletcher16(bytes.slice(0, 6)) === bytes[6] * 256 + bytes[7] ? value : undefined;
}

/** A pixel rectangle. */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The sampled centre of every block of clockLayout(), in pixels of a width x height picture. */
export function sampleRects(width: number, height: number): Rect[] {
  return clockLayout().map(({ rect }) => {
    const cx = (rect.x + rect.w / 2) * width;
    const cy = (rect.y + rect.h / 2) * height;
    const w = Math.max(1, Math.round(rect.w * width * SAMPLE_SHARE));
    const h = Math.max(1, Math.round(rect.h * height * SAMPLE_SHARE));
    return { x: Math.round(cx - w / 2), y: Math.round(cy - h / 2), w, h };
  });
}

/** Mean luma of each rectangle in a grayscale (one byte per pixel) picture. */
export function meansOf(gray: Uint8Array, width: number, rects: Rect[]): number[] {
  return rects.map((r) => {
    let sum = 0;
    for (let y = r.y; y < r.y + r.h; y++) {
      const row = y * width;
      for (let x = r.x; x < r.x + r.w; x++) sum += gray[row + x];
    }
    return sum / (r.w * r.h);
  });
}

/**
 * The value from the mean luma of every block (in clockLayout()'s order): the first band
 * whose rows have contrast and whose checksum matches; undefined if none.
 */
export function decodeMeans(means: number[]): number | undefined {
  const layout = clockLayout();
  if (means.length !== layout.length) return undefined;
  for (let band = 0; band < BANDS.length; band++) {
    const bits: number[] = new Array<number>(CODE_BITS).fill(0);
    let ok = true;
    for (let row = 0; row < 2 && ok; row++) {
      const idx = layout.map((b, i) => i).filter((i) => layout[i].band === band && layout[i].row === row);
      const black = means[idx.find((i) => layout[i].kind === 'black')!];
      const white = means[idx.find((i) => layout[i].kind === 'white')!];
      if (white - black < MIN_CONTRAST) ok = false;
      const threshold = (white + black) / 2;
      for (const i of idx) if (layout[i].kind === 'bit') bits[layout[i].bit] = means[i] > threshold ? 1 : 0;
    }
    const value = ok ? bitsToValue(bits) : undefined;
    if (value !== undefined) return value;
  }
  return undefined;
}

/** Decodes a grayscale picture (one byte per pixel, rows of `width`). */
export function decodeGray(gray: Uint8Array, width: number, height: number): number | undefined {
  return decodeMeans(meansOf(gray, width, sampleRects(width, height)));
}

/**
 * The code drawn into a grayscale picture, as the publisher page draws it (mid-grey
 * background, no text): for tests of the decoder, and nothing else.
 */
export function renderClockGray(valueMs: number, width: number, height: number): Uint8Array {
  const gray = new Uint8Array(width * height).fill(128);
  const bits = encodeClock(valueMs);
  for (const b of clockLayout()) {
    const level = b.kind === 'black' ? 0 : b.kind === 'white' ? 255 : bits[b.bit] ? 255 : 0;
    const x0 = Math.round(b.rect.x * width);
    const x1 = Math.round((b.rect.x + b.rect.w) * width);
    const y0 = Math.round(b.rect.y * height);
    const y1 = Math.round((b.rect.y + b.rect.h) * height);
    for (let y = y0; y < y1; y++) gray.fill(level, y * width + x0, y * width + x1);
  }
  return gray;
}
