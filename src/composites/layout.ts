// Where each participant of a composite goes in its picture: pure geometry, no ffmpeg.
//
// grid: equal tiles in join order, left to right and top to bottom: one participant fills
// the picture, two sit side by side, three or four make a 2x2 grid, five to nine a 3x3
// grid; a last row that is not full is centred.
// speaker: the participant speaking fills the main area (the top three quarters) and the
// others are a strip of small tiles below it, centred.
//
// Each picture keeps its shape inside its tile (letter-boxed on the composite's
// background): the placement is the fitted size and where it goes, so the compositor
// needs no padding filter and can move and resize a picture while it runs.

export const LAYOUTS = ['grid', 'speaker'] as const;
export type LayoutName = (typeof LAYOUTS)[number];

export interface Size {
  width: number;
  height: number;
}

export interface Rect extends Size {
  x: number;
  y: number;
}

export interface Placement {
  /** The participant's tile. */
  tile: Rect;
  /** Its picture fitted into the tile, keeping its shape (its whole tile without a picture size). */
  picture: Rect;
}

/** Columns and rows of the grid for `n` participants. */
export function gridShape(n: number): { columns: number; rows: number } {
  if (n <= 1) return { columns: 1, rows: 1 };
  if (n === 2) return { columns: 2, rows: 1 };
  if (n <= 4) return { columns: 2, rows: 2 };
  return { columns: 3, rows: Math.ceil(n / 3) };
}

/** Rounds down to an even number (4:2:0 pictures have even sizes and offsets). */
const even = (v: number) => 2 * Math.floor(v / 2);

/** `picture` scaled to fit `tile`, keeping its shape, centred. */
export function fit(tile: Rect, picture: Size | undefined): Rect {
  if (!picture || picture.width <= 0 || picture.height <= 0) return tile;
  const scale = Math.min(tile.width / picture.width, tile.height / picture.height);
  const width = Math.max(2, Math.min(tile.width, even(picture.width * scale)));
  const height = Math.max(2, Math.min(tile.height, even(picture.height * scale)));
  return { x: tile.x + even((tile.width - width) / 2), y: tile.y + even((tile.height - height) / 2), width, height };
}

/** Tiles of equal size in rows, each row centred when it is not full. */
function rowsOfTiles(count: number, area: Rect, columns: number, rows: number): Rect[] {
  const w = even(area.width / columns);
  const h = even(area.height / rows);
  const tiles: Rect[] = [];
  for (let i = 0; i < count; i++) {
    const row = Math.floor(i / columns);
    const inRow = Math.min(columns, count - row * columns);
    const offset = even((area.width - inRow * w) / 2);
    tiles.push({ x: area.x + offset + (i % columns) * w, y: area.y + row * h, width: w, height: h });
  }
  return tiles;
}

/**
 * Where each of `pictures` (participants in join order; undefined: no video, or its size
 * is not known yet) goes in a picture of `size`. `speaker`: the index of the participant
 * speaking (speaker layout; the first one when undefined).
 */
export function placements(layout: LayoutName, size: Size, pictures: (Size | undefined)[], speaker?: number): Placement[] {
  const n = pictures.length;
  if (n === 0) return [];
  const whole: Rect = { x: 0, y: 0, width: even(size.width), height: even(size.height) };
  let tiles: Rect[];
  if (layout === 'grid' || n === 1) {
    const { columns, rows } = gridShape(n);
    tiles = rowsOfTiles(n, whole, columns, rows);
  } else {
    const main = Math.min(Math.max(speaker ?? 0, 0), n - 1);
    const stripHeight = even(whole.height / 4);
    const mainArea: Rect = { ...whole, height: whole.height - stripHeight };
    const others = n - 1;
    const strip = rowsOfTiles(others, { x: 0, y: mainArea.height, width: whole.width, height: stripHeight }, Math.max(4, others), 1);
    tiles = [];
    let k = 0;
    for (let i = 0; i < n; i++) tiles.push(i === main ? mainArea : strip[k++]);
  }
  return tiles.map((tile, i) => ({ tile, picture: fit(tile, pictures[i]) }));
}
