import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { segmentsOf } from './hls-media.js';

// A viewer that keeps every HLS segment it sees: polls the playlist (faster than segments
// leave it), downloads each new complete segment once (fMP4: after its init section), and at the end tells what a player got:
// the playlist's media sequence over time and the video frames' presentation times
// (ffprobe on the segments joined end to end, as a player plays them).

const run = promisify(execFile);

export interface HlsViewer {
  /** Latest #EXT-X-MEDIA-SEQUENCE + segments listed: grows while HLS advances. */
  progress(): number;
  segments(): number;
  stop(): Promise<void>;
  /** Presentation times (s) of every video frame in the segments, in order. */
  videoFrameTimes(): Promise<number[]>;
}

export function watchHls(base: string, name: string, everyMs = 300): HlsViewer {
  const url = `${base}/hls/${encodeURIComponent(name)}/index.m3u8`;
  const seen = new Set<string>();
  const data: Buffer[] = [];
  let progress = 0;
  let stopped = false;
  let lastMap: string | undefined;
  const loop = (async () => {
    while (!stopped) {
      try {
        const text = await (await fetch(url)).text();
        const sequence = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0);
        const segments = segmentsOf(text);
        progress = Math.max(progress, sequence + segments.length);
        for (const { uri, map } of segments) {
          const name = uri.split('?')[0];
          if (seen.has(name)) continue;
          // fMP4: the init section goes first, and again only when it changes (a new one after a restart).
          if (map && map !== lastMap) {
            const init = await fetch(new URL(map, url));
            if (!init.ok) continue;
            data.push(Buffer.from(await init.arrayBuffer()));
            lastMap = map;
          }
          const res = await fetch(new URL(uri, url));
          if (!res.ok) continue; // already deleted: missed, which the frame times will show
          seen.add(name);
          data.push(Buffer.from(await res.arrayBuffer()));
        }
      } catch {
        // not there yet
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    progress: () => progress,
    segments: () => data.length,
    stop: async () => {
      stopped = true;
      await loop;
    },
    videoFrameTimes: () =>
      withFile(data, async (file) => {
        const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
        return stdout.split('\n').map((l) => parseFloat(l)).filter(Number.isFinite).sort((a, b) => a - b); // lines like "1.466667,"
      }),
  };
}

/** The segments joined end to end in one temporary file, as a player plays them. */
async function withFile<T>(data: Buffer[], use: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hls-viewer-'));
  try {
    const file = path.join(dir, data[0]?.subarray(4, 8).toString() === 'ftyp' ? 'all.mp4' : 'all.ts');
    await writeFile(file, Buffer.concat(data));
    return await use(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The longest time between two consecutive video frames, in seconds. */
export function longestGap(times: number[]): number {
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
  return gap;
}
