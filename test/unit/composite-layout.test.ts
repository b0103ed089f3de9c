import { describe, expect, it } from 'vitest';
import { fit, gridShape, placements, type Rect } from '../../src/composites/layout.js';

// The geometry of a composite's picture: which tile each participant gets, and how its
// picture fits in it keeping its shape.

const HD = { width: 1280, height: 720 };
const cam = { width: 640, height: 360 };
const inside = (inner: Rect, outer: Rect) => inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.width <= outer.x + outer.width && inner.y + inner.height <= outer.y + outer.height;
const overlap = (a: Rect, b: Rect) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

describe('composite layout', () => {
  it('grid shapes: 1 fills, 2 side by side, 3-4 in 2x2, 5-9 in 3x3', () => {
    expect([1, 2, 3, 4, 5, 9].map(gridShape)).toEqual([
      { columns: 1, rows: 1 },
      { columns: 2, rows: 1 },
      { columns: 2, rows: 2 },
      { columns: 2, rows: 2 },
      { columns: 3, rows: 2 },
      { columns: 3, rows: 3 },
    ]);
  });

  it('one participant fills the picture; two sit side by side, each letter-boxed', () => {
    expect(placements('grid', HD, [cam])).toEqual([{ tile: { x: 0, y: 0, ...HD }, picture: { x: 0, y: 0, ...HD } }]);
    const [a, b] = placements('grid', HD, [cam, cam]);
    expect(a.tile).toEqual({ x: 0, y: 0, width: 640, height: 720 });
    expect(b.tile).toEqual({ x: 640, y: 0, width: 640, height: 720 });
    expect(a.picture).toEqual({ x: 0, y: 180, width: 640, height: 360 }); // 16:9 kept in a 8:9 tile
  });

  it('tiles go in join order, left to right, top to bottom; a short last row is centred; nothing overlaps', () => {
    for (let n = 1; n <= 9; n++) {
      const p = placements('grid', HD, Array.from({ length: n }, () => cam));
      expect(p).toHaveLength(n);
      for (const [i, a] of p.entries()) {
        expect(inside(a.picture, a.tile)).toBe(true);
        expect(inside(a.tile, { x: 0, y: 0, ...HD })).toBe(true);
        for (const b of p.slice(i + 1)) expect(overlap(a.tile, b.tile)).toBe(false);
        if (i > 0) expect(a.tile.y > p[i - 1].tile.y || a.tile.x > p[i - 1].tile.x).toBe(true);
      }
    }
    const three = placements('grid', HD, [cam, cam, cam]);
    expect(three[2].tile).toEqual({ x: 320, y: 360, width: 640, height: 360 });
  });

  it('speaker: the one speaking fills the main area, the others a centred strip below', () => {
    const p = placements('speaker', HD, [cam, cam, cam], 1);
    expect(p[1].tile).toEqual({ x: 0, y: 0, width: 1280, height: 540 });
    expect(p[1].picture).toEqual({ x: 160, y: 0, width: 960, height: 540 });
    expect(p[0].tile).toEqual({ x: 320, y: 540, width: 320, height: 180 });
    expect(p[2].tile).toEqual({ x: 640, y: 540, width: 320, height: 180 });
  });

  it('a participant without video gets its whole tile; sizes and places are even', () => {
    const p = placements('grid', { width: 1279, height: 721 }, [undefined, { width: 333, height: 251 }, cam]);
    expect(p[0].picture).toEqual(p[0].tile);
    for (const { picture } of p) for (const v of Object.values(picture)) expect(v % 2).toBe(0);
    expect(fit({ x: 0, y: 0, width: 100, height: 100 }, { width: 1000, height: 10 })).toEqual({ x: 0, y: 48, width: 100, height: 2 });
  });
});
