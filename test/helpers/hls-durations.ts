import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fetchSegment, segmentsOf } from './hls-media.js';

// What a live HLS playlist claims against what its segments hold: each segment listed is
// fetched at once (the live window moves on and old segments are deleted) and its video
// packets read with ffprobe. A segment's real length is the span of its video packets'
// presentation times plus one frame (the last picture is shown for a frame's time), not
// what the container or the playlist says.

const run = promisify(execFile);

export interface MeasuredSegment {
  uri: string;
  /** What the playlist says (#EXTINF), s. */
  extinf: number;
  /** Last video pts - first video pts + one frame interval, s. */
  measured: number;
  /** Video packets in the segment. */
  frames: number;
  /** First and last video pts, s (the stream's own timeline, as ffprobe reads it). */
  firstPts: number;
  lastPts: number;
  /** The median spacing of its video packets, s. */
  frameInterval: number;
  /** Whether its first video packet is a keyframe. */
  startsWithKeyframe: boolean;
}

export interface MeasuredPlaylist {
  /** #EXT-X-TARGETDURATION, s. */
  target: number;
  mediaSequence: number;
  segments: MeasuredSegment[];
  /** The playlist as fetched. */
  text: string;
}

interface ProbePackets {
  packets?: { pts_time?: string; flags?: string }[];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Fetches a live playlist and every segment it lists, and measures each segment's video. */
export async function measurePlaylist(playlistUrl: string): Promise<MeasuredPlaylist> {
  const res = await fetch(playlistUrl);
  if (!res.ok) throw new Error(`${playlistUrl}: ${res.status}`);
  const text = await res.text();
  const target = Number(/^#EXT-X-TARGETDURATION:(\d+)\s*$/m.exec(text)?.[1]);
  const mediaSequence = Number(/^#EXT-X-MEDIA-SEQUENCE:(\d+)\s*$/m.exec(text)?.[1] ?? 0);
  const listed = [...text.matchAll(/^#EXTINF:([\d.]+),[^\n]*\n(?:#[^\n]*\n)*([^#\s][^\n]*)$/gm)].map((m) => ({ extinf: Number(m[1]), uri: m[2].trim() }));
  // Every segment's bytes first, while all are still there (fMP4: each after its init section); then the slow part.
  const maps = new Map(segmentsOf(text).map((x) => [x.uri, x]));
  const bodies = await Promise.all(listed.map(async (s) => (await fetchSegment(playlistUrl, maps.get(s.uri) ?? { uri: s.uri })).bytes));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hls-durations-'));
  try {
    const segments: MeasuredSegment[] = [];
    for (const [i, s] of listed.entries()) {
      const file = path.join(dir, `${i}${maps.get(s.uri)?.map ? '.mp4' : '.ts'}`);
      await writeFile(file, bodies[i]);
      const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time,flags', '-of', 'json', file], { timeout: 30_000 });
      const packets = ((JSON.parse(stdout) as ProbePackets).packets ?? []).filter((p) => p.pts_time !== undefined && p.pts_time !== 'N/A');
      if (packets.length < 2) throw new Error(`${s.uri}: ${packets.length} video packets`);
      const pts = packets.map((p) => Number(p.pts_time));
      const sorted = [...pts].sort((a, b) => a - b);
      const frameInterval = median(sorted.slice(1).map((t, k) => t - sorted[k]));
      const firstPts = sorted[0];
      const lastPts = sorted.at(-1)!;
      segments.push({
        uri: s.uri,
        extinf: s.extinf,
        measured: lastPts - firstPts + frameInterval,
        frames: pts.length,
        firstPts,
        lastPts,
        frameInterval,
        startsWithKeyframe: packets[0].flags?.startsWith('K') ?? false,
      });
    }
    return { target, mediaSequence, segments, text };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One line per segment, for failure messages and logs. */
export function describeSegments(p: MeasuredPlaylist): string {
  return [
    `#EXT-X-TARGETDURATION:${p.target}, #EXT-X-MEDIA-SEQUENCE:${p.mediaSequence}`,
    ...p.segments.map((s) => `${s.uri}: EXTINF ${s.extinf.toFixed(3)} measured ${s.measured.toFixed(3)} (${s.frames} frames, pts ${s.firstPts.toFixed(3)}-${s.lastPts.toFixed(3)})${s.startsWithKeyframe ? '' : ' NOT starting at a keyframe'}`),
  ].join('\n');
}

/** A frame at 30 fps, s. */
export const FRAME_30 = 1 / 30;

/**
 * What is wrong with a playlist's durations (empty: nothing), for segments meant to last
 * `nominal` seconds: each segment starts at a keyframe, its #EXTINF is within `tolerance`
 * of its measured length and that within `tolerance` of `nominal`, and
 * #EXT-X-TARGETDURATION is the longest segment rounded to whole seconds (RFC 8216
 * 4.3.3.1: no #EXTINF, rounded, above it; and not more than that, or players wait longer
 * than they need to).
 */
/**
 * What a playlist gets wrong: segments not starting at a keyframe, an EXTINF that is not
 * what the segment holds, a length off `nominal` by more than `nominalTolerance`, a wrong
 * target duration.
 */
export function durationProblems(p: MeasuredPlaylist, nominal: number, tolerance = FRAME_30, nominalTolerance = tolerance): string[] {
  const problems: string[] = [];
  if (p.segments.length === 0) problems.push('no segments');
  for (const s of p.segments) {
    if (!s.startsWithKeyframe) problems.push(`${s.uri} does not start at a keyframe`);
    if (Math.abs(s.extinf - s.measured) > tolerance) problems.push(`${s.uri}: EXTINF ${s.extinf} but ${s.measured.toFixed(4)} s of video`);
    if (Math.abs(s.measured - nominal) > nominalTolerance) problems.push(`${s.uri}: ${s.measured.toFixed(4)} s of video, not ${nominal}`);
    if (Math.round(s.extinf) > p.target) problems.push(`${s.uri}: EXTINF ${s.extinf} over the target duration ${p.target}`);
  }
  const longest = Math.max(...p.segments.map((s) => s.measured));
  if (p.target !== Math.round(longest)) problems.push(`target duration ${p.target}, the longest segment ${longest.toFixed(4)} s`);
  return problems;
}
