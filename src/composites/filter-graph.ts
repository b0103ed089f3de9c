import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fill, PIPELINE_DIR } from '../pipelines/definition.js';
import { placements, type LayoutName, type Size } from './layout.js';

// A composite's ffmpeg filter graph, as data: the pieces are templates in
// pipelines/shared/composite-graph.json, filled here from the participants and the layout
// (layout.ts). Pure: no ffmpeg, no files written.
//
// The participants' inputs are the streams of one session SDP (compositor.ts): their
// videos are 0:v:0, 0:v:1, ... and their audios 0:a:0, ... in join order, each only for a
// participant who sends one. Out come [vout] (the picture) and [aout] (the mix).

export interface GraphParticipant {
  name: string;
  /** Its video's index among the input's video streams; none: a plain tile with its name. */
  video?: number;
  /** Its audio's index among the input's audio streams; none: it adds nothing to the mix. */
  audio?: number;
}

export interface GraphOptions {
  layout: LayoutName;
  size: Size;
  fps: number;
  participants: GraphParticipant[];
  /** Speaker layout: the participant in the main area (index in `participants`). */
  speaker?: number;
  /** Where the level of each participant's audio is written (speaker.ts reads it), by participant index. */
  levelFile?: (index: number) => string;
}

type Templates = Record<'background' | 'pace' | 'picture' | 'overlay' | 'nameTile' | 'videoOut' | 'sound' | 'levels' | 'mix' | 'silence' | 'backgroundColour' | 'tileColour', string>;

let cached: Templates | undefined;
function templates(): Templates {
  cached ??= JSON.parse(readFileSync(path.join(PIPELINE_DIR, 'shared', 'composite-graph.json'), 'utf8')) as Templates;
  return cached;
}

/** A path written into the graph unescaped: only characters with no meaning to ffmpeg's graph parser. */
const PLAIN_PATH = /^[A-Za-z0-9_./-]+$/;

export function filterGraph(o: GraphOptions): string {
  const t = templates();
  const parts: string[] = [];
  const pictures = o.participants.map(() => undefined); // each picture is fitted by ffmpeg (scale keeps its shape), whatever size it comes in
  const where = placements(o.layout, o.size, pictures, o.speaker);
  const anyVideo = o.participants.some((p) => p.video !== undefined);
  parts.push(fill(t.background, { background: t.backgroundColour, width: o.size.width, height: o.size.height, fps: o.fps, pace: anyVideo ? '' : t.pace }));
  let under = 'bg';
  o.participants.forEach((p, i) => {
    const tile = where[i].tile;
    const out = `t${i}`;
    const values = { index: i, under, out, x: tile.x, y: tile.y, tileWidth: tile.width, tileHeight: tile.height };
    if (p.video !== undefined) {
      parts.push(fill(t.picture, { ...values, input: p.video }));
      parts.push(fill(t.overlay, values));
    } else {
      const fontSize = Math.max(12, Math.round(tile.height / 8));
      parts.push(fill(t.nameTile, { ...values, tile: t.tileColour, name: p.name, fontSize }));
    }
    under = out;
  });
  parts.push(fill(t.videoOut, { under }));
  const sounds = o.participants.flatMap((p, i) => (p.audio === undefined ? [] : [{ p, i }]));
  if (sounds.length === 0) parts.push(t.silence);
  else {
    for (const { p, i } of sounds) {
      const file = o.levelFile?.(i);
      const levels = file && PLAIN_PATH.test(file) ? fill(t.levels, { levelFile: file }) : '';
      parts.push(fill(t.sound, { input: p.audio!, index: i, levels }));
    }
    parts.push(fill(t.mix, { inputs: sounds.map(({ i }) => `[s${i}]`).join(''), count: sounds.length }));
  }
  return parts.join(';');
}
