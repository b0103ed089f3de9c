import { readdir, readFile } from 'node:fs/promises';
import { waitFor } from './gateway.js';

// Small clients for the gateway's HTTP surface as a user sees it: stream info, HLS
// playlists, health. Shared by the end-to-end tests.

export interface Endpoint {
  address: string;
  port: number;
  type: string;
  protocol: string;
}

export interface StreamInfoJson {
  name: string;
  session: string;
  state: string;
  tracks: { kind: string; codec: string; packets: number; keyframes: number; width?: number; height?: number; fps?: number; channels: number; lost: number; keyframeIntervalSeconds?: number; answersKeyframeRequests?: boolean }[];
  outputs: { id: string; type: string; state: string; restarts: number; error?: string }[];
  ice?: { local: Endpoint; remote: Endpoint };
  ignoredMedia: { mid?: string; kind: string; reason: string }[];
}

export async function getStream(base: string, name: string): Promise<{ status: number; info?: StreamInfoJson }> {
  const res = await fetch(`${base}/api/streams/${encodeURIComponent(name)}`);
  if (res.status !== 200) {
    await res.body?.cancel();
    return { status: res.status };
  }
  return { status: 200, info: (await res.json()) as StreamInfoJson };
}

/** Waits for state 'live' with a selected ICE pair and a running HLS output. */
export function waitLive(base: string, name: string, timeoutMs = 20_000): Promise<StreamInfoJson> {
  return waitFor(`stream ${name} live with HLS running`, async () => {
    const { info } = await getStream(base, name);
    return info?.state === 'live' && info.ice && info.outputs.some((o) => o.id === 'hls' && o.state === 'running') ? info : undefined;
  }, timeoutMs, 200);
}

/** Waits until the stream is gone from the API (404); returns how long that took. */
export async function waitGone(base: string, name: string, timeoutMs = 15_000): Promise<number> {
  const t0 = Date.now();
  await waitFor(`stream ${name} gone from the API`, async () => ((await getStream(base, name)).status === 404 ? true : undefined), timeoutMs, 100);
  return Date.now() - t0;
}

export function segmentCount(playlist: string): number {
  return playlist.split('\n').filter((l) => /^[^#].*\.(ts|m4s)\s*$/.test(l)).length;
}

/** Waits for the HLS playlist over HTTP to list at least `min` segments; returns its text. */
export function waitPlaylist(base: string, name: string, min = 2, timeoutMs = 30_000): Promise<string> {
  return waitFor(`${name} playlist with ${min} segments`, async () => {
    const res = await fetch(`${base}/hls/${encodeURIComponent(name)}/index.m3u8`);
    const text = await res.text();
    return res.ok && segmentCount(text) >= min ? text : undefined;
  }, timeoutMs, 250);
}

/** Waits for the playlist (HTTP) to end with #EXT-X-ENDLIST. */
export function waitEndlist(base: string, name: string, timeoutMs = 15_000): Promise<string> {
  return waitFor(`${name} playlist ENDLIST`, async () => {
    const res = await fetch(`${base}/hls/${encodeURIComponent(name)}/index.m3u8`);
    const text = await res.text();
    return res.ok && text.trimEnd().endsWith('#EXT-X-ENDLIST') ? text : undefined;
  }, timeoutMs, 200);
}

export async function healthz(base: string): Promise<number> {
  const res = await fetch(`${base}/healthz`);
  await res.body?.cancel();
  return res.status;
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  name: string;
  cmdline: string;
}

/** Processes whose executable name is `name` and whose command line contains `needle` (Linux /proc). */
export async function findProcesses(name: string, needle: string): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid ..." – comm may hold spaces, so split at the last ')'.
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z') continue; // a zombie is already dead, only not yet reaped
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      if (comm === name && cmdline.includes(needle)) out.push({ pid: Number(entry), ppid: Number(rest[1]), name: comm, cmdline });
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}
