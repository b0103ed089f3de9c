import { execFile } from 'node:child_process';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { STREAM_NAME } from './names.js';

// Recordings live in data/recordings/<stream>/<stream>_<UTC time>.<mp4|mkv>, each with a
// small .json beside it written when the recording finishes. Names are made by the
// gateway, never by a caller, and every lookup is checked against these patterns, so a
// request cannot reach outside the folder.

export const RECORDING_FILE = /^[A-Za-z0-9_-]{1,64}_\d{8}-\d{6}(-\d+)?\.(mp4|mkv)$/;

export interface RecordingInfo {
  stream: string;
  file: string;
  url: string;
  bytes: number;
  startedAt: string;
  endedAt: string | null;
  durationSeconds: number | null;
}

interface Sidecar {
  startedAt: string;
  endedAt: string | null;
  durationSeconds: number | null;
}

export class Recordings {
  readonly root: string;

  constructor(
    dataDir: string,
    private readonly ffprobePath: string,
  ) {
    this.root = path.resolve(dataDir, 'recordings');
  }

  dir(stream: string): string {
    return path.join(this.root, stream);
  }

  /** A new file name for a recording starting now. */
  fileName(stream: string, format: string, now = new Date()): string {
    const t = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    return `${stream}_${t}.${format}`;
  }

  /** The absolute path of a recording, or undefined if the names are not ours. */
  resolve(stream: string, file: string): string | undefined {
    if (!STREAM_NAME.test(stream) || !RECORDING_FILE.test(file)) return undefined;
    return path.join(this.root, stream, file);
  }

  url(stream: string, file: string): string {
    return `/recordings/${stream}/${file}`;
  }

  async started(stream: string, file: string, startedAt: Date): Promise<void> {
    await this.writeSidecar(stream, file, { startedAt: startedAt.toISOString(), endedAt: null, durationSeconds: null });
  }

  /** Writes the end time and the measured duration; returns the finished recording. */
  async finished(stream: string, file: string, startedAt: Date): Promise<RecordingInfo | undefined> {
    const full = this.resolve(stream, file);
    if (!full) return undefined;
    const st = await stat(full).catch(() => undefined);
    if (!st) return undefined;
    const durationSeconds = await this.probeDuration(full);
    const sidecar: Sidecar = { startedAt: startedAt.toISOString(), endedAt: new Date().toISOString(), durationSeconds };
    await this.writeSidecar(stream, file, sidecar);
    return { stream, file, url: this.url(stream, file), bytes: st.size, ...sidecar };
  }

  async list(): Promise<RecordingInfo[]> {
    const out: RecordingInfo[] = [];
    const streams = await readdir(this.root).catch(() => [] as string[]);
    for (const stream of streams.filter((s) => STREAM_NAME.test(s))) {
      const files = await readdir(this.dir(stream)).catch(() => [] as string[]);
      for (const file of files.filter((f) => RECORDING_FILE.test(f))) {
        const st = await stat(path.join(this.dir(stream), file)).catch(() => undefined);
        if (!st) continue;
        const side = await this.readSidecar(stream, file);
        out.push({
          stream,
          file,
          url: this.url(stream, file),
          bytes: st.size,
          startedAt: side?.startedAt ?? st.birthtime.toISOString(),
          endedAt: side?.endedAt ?? null,
          durationSeconds: side?.durationSeconds ?? null,
        });
      }
    }
    return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  async remove(stream: string, file: string): Promise<boolean> {
    const full = this.resolve(stream, file);
    if (!full) return false;
    const existed = await stat(full).then(() => true, () => false);
    await rm(full, { force: true });
    await rm(`${full}.json`, { force: true });
    return existed;
  }

  private async writeSidecar(stream: string, file: string, data: Sidecar): Promise<void> {
    await writeFile(path.join(this.dir(stream), `${file}.json`), JSON.stringify(data));
  }

  private async readSidecar(stream: string, file: string): Promise<Sidecar | undefined> {
    try {
      return JSON.parse(await readFile(path.join(this.dir(stream), `${file}.json`), 'utf8')) as Sidecar;
    } catch {
      return undefined;
    }
  }

  private probeDuration(file: string): Promise<number | null> {
    return new Promise((resolve) => {
      execFile(this.ffprobePath, ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file], { timeout: 15_000 }, (err, stdout) => {
        const d = Number.parseFloat(stdout);
        resolve(err || !Number.isFinite(d) ? null : Math.round(d * 1000) / 1000);
      });
    });
  }
}
