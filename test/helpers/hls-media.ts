import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ffprobe, type Probe } from './ffprobe.js';

// Reading an HLS media playlist as a plain player does: its complete segments (URI lines),
// each after the init section it follows (#EXT-X-MAP, fMP4) so that it decodes on its own.
// LL-HLS parts are tags (#EXT-X-PART), not URI lines: a plain player never sees them.

export interface HlsSegment {
  /** Its URI as the playlist names it (with any ?ticket=). */
  uri: string;
  /** The init section it needs (fMP4), or none (MPEG-TS). */
  map?: string;
}

/** The playlist's complete segments, oldest first. */
export function segmentsOf(playlist: string): HlsSegment[] {
  const out: HlsSegment[] = [];
  let map: string | undefined;
  for (const line of playlist.split('\n').map((l) => l.trim())) {
    const m = /^#EXT-X-MAP:.*URI="([^"]+)"/.exec(line);
    if (m) map = m[1];
    else if (line && !line.startsWith('#')) out.push({ uri: line, ...(map ? { map } : {}) });
  }
  return out;
}

/** A segment as one decodable file (init section + segment for fMP4), fetched relative to the playlist's URL. */
export async function fetchSegment(playlistUrl: string, segment: HlsSegment): Promise<{ bytes: Buffer; ext: 'mp4' | 'ts' }> {
  const get = async (uri: string) => {
    const res = await fetch(new URL(uri, playlistUrl));
    if (!res.ok) throw new Error(`${uri}: ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  };
  if (!segment.map) return { bytes: await get(segment.uri), ext: 'ts' };
  return { bytes: Buffer.concat([await get(segment.map), await get(segment.uri)]), ext: 'mp4' };
}

/** The media sequence number of the playlist's newest complete segment (-1 before the first). */
export function lastSequence(playlist: string): number {
  const first = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(playlist)?.[1] ?? 0);
  return first + segmentsOf(playlist).length - 1;
}

/** ffprobe of the playlist's newest complete segment, as a player would decode it; undefined before the first. */
export async function probeNewestSegment(playlistUrl: string): Promise<Probe | undefined> {
  const res = await fetch(playlistUrl);
  const newest = res.ok ? segmentsOf(await res.text()).at(-1) : undefined;
  return newest && probeSegment(playlistUrl, newest);
}

/** ffprobe of one segment (fMP4: with its init section). */
export async function probeSegment(playlistUrl: string, segment: HlsSegment): Promise<Probe> {
  const { bytes, ext } = await fetchSegment(playlistUrl, segment);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hls-segment-'));
  try {
    const file = path.join(dir, `segment.${ext}`);
    await writeFile(file, bytes);
    return await ffprobe(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
