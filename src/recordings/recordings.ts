import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { NAME_PATTERN, STREAM_NAME } from '../streams/names.js';

// Recordings live in data/recordings/<stream>/<stream>_<UTC time>.<mp4|mkv|webm>, each with a
// small .json beside it. Names are made by the gateway, never by a caller, and every
// lookup is checked against these patterns, so a request cannot reach outside the folder.
//
// Nothing written is ever overwritten: when a recording's ffmpeg dies and is started
// again, it writes the next *part* (<name>.part2.mp4, ...) and the recording lists its
// parts. Names are reserved before ffmpeg runs, so two recordings started in the same
// second get two names, and a part name taken by a file already there is skipped; the
// file itself is then created exclusively (O_EXCL) just before ffmpeg writes into it
// (outputs/pipeline-run.ts, for pipelines with overwrite: false), so no other writer can
// slip in between.

/** Recording containers (record.json's formats) and what they are served as. */
export const RECORDING_TYPES: Record<string, string> = { mp4: 'video/mp4', mkv: 'video/x-matroska', webm: 'video/webm' };
const EXTENSION = `(${Object.keys(RECORDING_TYPES).join('|')})`;

export const RECORDING_FILE = new RegExp(`^${NAME_PATTERN}_\\d{8}-\\d{6}(-\\d+)?(\\.part\\d+)?\\.${EXTENSION}$`);
/** A recording's first part (the name the API lists it under). */
const FIRST_PART = new RegExp(`^${NAME_PATTERN}_\\d{8}-\\d{6}(-\\d+)?\\.${EXTENSION}$`);

const RECORDING_STATES = ['recording', 'finished', 'failed', 'interrupted'] as const;
export type RecordingState = (typeof RECORDING_STATES)[number];

const seconds = z.number().min(0).nullable().describe('null until measured (while recording), or where it could not be');

export const recordingPart = z.strictObject({
  file: z.string(),
  url: z.string(),
  bytes: z.number().int().min(0),
  durationSeconds: seconds,
});
export type RecordingPart = z.infer<typeof recordingPart>;

/** What GET /api/recordings shows of a recording (and the recording.finished event carries). */
export const recordingInfo = z.strictObject({
  stream: z.string(),
  file: z.string().describe('the first part: the recording is listed, downloaded and deleted under this name'),
  url: z.string(),
  bytes: z.number().int().min(0).describe('all parts together'),
  startedAt: z.iso.datetime(),
  endedAt: z.iso.datetime().nullable(),
  durationSeconds: seconds,
  state: z
    .enum(RECORDING_STATES)
    .describe('recording; finished; failed (see error; what was written is kept); interrupted (the gateway stopped without finishing it, measured at the next start)'),
  error: z.string().optional().describe('why it failed (e.g. disk full) or was interrupted'),
  parts: z.array(recordingPart).describe('one file per run of the recording ffmpeg, in order: more than one when it had to be started again'),
});
export type RecordingInfo = z.infer<typeof recordingInfo>;

interface Sidecar {
  startedAt: string;
  endedAt: string | null;
  durationSeconds: number | null;
  /** Absent in sidecars written before parts existed (then: finished, one part). */
  state?: RecordingState;
  error?: string;
  /** Every part's file name, the first included. */
  parts?: string[];
  partDurations?: (number | null)[];
}

/** A recording that is still being written cannot be deleted (409). */
export class RecordingBusy extends Error {}

export class Recordings {
  readonly root: string;
  /** First-part names in use or about to be created, by stream/file. */
  private readonly active = new Set<string>();

  constructor(
    dataDir: string,
    private readonly ffprobePath: string,
  ) {
    this.root = path.resolve(dataDir, 'recordings');
  }

  dir(stream: string): string {
    return path.join(this.root, stream);
  }

  /** Reserves a new, unique first-part name for a recording starting now. */
  reserve(stream: string, format: string, now = new Date()): string {
    const t = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    for (let n = 0; ; n++) {
      const file = `${stream}_${t}${n ? `-${n}` : ''}.${format}`;
      const key = `${stream}/${file}`;
      if (this.active.has(key) || existsSync(path.join(this.dir(stream), file))) continue;
      this.active.add(key);
      return file;
    }
  }

  /** The file of part `n` (1 = the recording's own name). */
  partFile(first: string, n: number): string {
    return n <= 1 ? first : first.replace(new RegExp(`\\.${EXTENSION}$`), `.part${n}.$1`);
  }

  /** The absolute path of a recording or part, or undefined if the names are not ours. */
  resolve(stream: string, file: string): string | undefined {
    if (!STREAM_NAME.test(stream) || !RECORDING_FILE.test(file)) return undefined;
    return path.join(this.root, stream, file);
  }

  url(stream: string, file: string): string {
    return `/recordings/${stream}/${file}`;
  }

  isActive(stream: string, file: string): boolean {
    return this.active.has(`${stream}/${file}`);
  }

  async started(stream: string, file: string, startedAt: Date): Promise<void> {
    await this.writeSidecar(stream, file, { startedAt: startedAt.toISOString(), endedAt: null, durationSeconds: null, state: 'recording', parts: [file] });
  }

  /**
   * ffmpeg is started again: the number of the part it writes, the first after `after`
   * whose file is not there (a file someone else left is never written over).
   */
  async nextPart(stream: string, first: string, after: number): Promise<number> {
    let n = after + 1;
    while (existsSync(path.join(this.dir(stream), this.partFile(first, n)))) n++;
    const side = await this.readSidecar(stream, first);
    if (side) await this.writeSidecar(stream, first, { ...side, parts: [...new Set([...(side.parts ?? [first]), this.partFile(first, n)])] });
    return n;
  }

  /** Measures every part and writes the end; returns the recording (undefined if nothing was written). */
  async finished(stream: string, file: string, error?: string): Promise<RecordingInfo | undefined> {
    this.active.delete(`${stream}/${file}`);
    const side = await this.readSidecar(stream, file);
    if (!side) return undefined;
    if ((await this.existingParts(stream, side.parts ?? [file])).length === 0) {
      await rm(path.join(this.dir(stream), `${file}.json`), { force: true }); // stopped before ffmpeg wrote anything
      return undefined;
    }
    return this.complete(stream, file, side, error ? 'failed' : 'finished', error, new Date());
  }

  /**
   * At start-up: recordings a stopped or crashed gateway left open (state "recording")
   * are measured and marked interrupted, so their duration and end are known.
   */
  async recover(): Promise<number> {
    let n = 0;
    for (const stream of await this.streams()) {
      for (const file of await this.firstParts(stream)) {
        const side = await this.readSidecar(stream, file);
        if (!side || (side.state && side.state !== 'recording') || (!side.state && side.endedAt)) continue;
        const parts = (side.parts ?? [file]).map((p) => path.join(this.dir(stream), p));
        const mtimes = await Promise.all(parts.map((p) => stat(p).then((s) => s.mtimeMs, () => 0)));
        await this.complete(stream, file, side, 'interrupted', 'the gateway stopped while recording', new Date(Math.max(...mtimes) || Date.now()));
        n++;
      }
    }
    return n;
  }

  async list(): Promise<RecordingInfo[]> {
    const out: RecordingInfo[] = [];
    for (const stream of await this.streams()) {
      for (const file of await this.firstParts(stream)) {
        const info = await this.info(stream, file);
        if (info) out.push(info);
      }
    }
    return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /** Deletes a recording and all its parts. Throws RecordingBusy while it is being written. */
  async remove(stream: string, file: string): Promise<boolean> {
    const full = this.resolve(stream, file);
    if (!full || !FIRST_PART.test(file)) return false;
    if (this.isActive(stream, file)) throw new RecordingBusy(`recording ${file} is still being written: stop its record output first`);
    const side = await this.readSidecar(stream, file);
    const existed = await stat(full).then(() => true, () => false);
    for (const part of side?.parts ?? [file]) await rm(path.join(this.dir(stream), part), { force: true });
    await rm(`${full}.json`, { force: true });
    return existed;
  }

  /** Free space where recordings are written, in MB (undefined where the system cannot tell). */
  async freeMB(): Promise<number | undefined> {
    try {
      const s = await statfs(existsSync(this.root) ? this.root : path.dirname(this.root));
      return (s.bavail * s.bsize) / (1024 * 1024);
    } catch {
      return undefined;
    }
  }

  private async complete(stream: string, file: string, side: Sidecar, state: RecordingState, error: string | undefined, endedAt: Date): Promise<RecordingInfo> {
    const parts = await this.existingParts(stream, side.parts ?? [file]);
    const partDurations = await Promise.all(parts.map((p) => this.probeDuration(path.join(this.dir(stream), p))));
    const known = partDurations.filter((d): d is number => d !== null);
    const durationSeconds = known.length ? Math.round(known.reduce((a, b) => a + b, 0) * 1000) / 1000 : null;
    const done: Sidecar = { ...side, endedAt: endedAt.toISOString(), durationSeconds, state, ...(error ? { error } : {}), parts: side.parts ?? [file], partDurations };
    // On a full disk even these few bytes may not fit: the recording is still reported.
    await this.writeSidecar(stream, file, done).catch(() => undefined);
    return (await this.info(stream, file, done)) ?? { stream, file, url: this.url(stream, file), bytes: 0, startedAt: side.startedAt, endedAt: done.endedAt, durationSeconds, state, error, parts: [] };
  }

  private async info(stream: string, file: string, known?: Sidecar): Promise<RecordingInfo | undefined> {
    const first = await stat(path.join(this.dir(stream), file)).catch(() => undefined);
    if (!first) return undefined;
    const side = known ?? (await this.readSidecar(stream, file));
    const names = await this.existingParts(stream, side?.parts ?? [file]);
    const parts: RecordingPart[] = [];
    for (const [i, p] of names.entries()) {
      const st = await stat(path.join(this.dir(stream), p)).catch(() => undefined);
      if (st) parts.push({ file: p, url: this.url(stream, p), bytes: st.size, durationSeconds: side?.partDurations?.[i] ?? null });
    }
    const state: RecordingState = side?.state ?? (side?.endedAt ? 'finished' : this.isActive(stream, file) ? 'recording' : 'interrupted');
    return {
      stream,
      file,
      url: this.url(stream, file),
      bytes: parts.reduce((s, p) => s + p.bytes, 0),
      startedAt: side?.startedAt ?? first.birthtime.toISOString(),
      endedAt: side?.endedAt ?? null,
      durationSeconds: side?.durationSeconds ?? null,
      state,
      ...(side?.error ? { error: side.error } : {}),
      parts,
    };
  }

  private async existingParts(stream: string, names: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const n of names) if (RECORDING_FILE.test(n) && existsSync(path.join(this.dir(stream), n))) out.push(n);
    return out;
  }

  private async streams(): Promise<string[]> {
    return (await readdir(this.root).catch(() => [] as string[])).filter((s) => STREAM_NAME.test(s));
  }

  private async firstParts(stream: string): Promise<string[]> {
    return (await readdir(this.dir(stream)).catch(() => [] as string[])).filter((f) => FIRST_PART.test(f));
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

  /**
   * A file's duration: what its header says, or, for a file whose writer was killed before
   * it wrote one (Matroska keeps its duration for the end), the span of its packets.
   */
  private async probeDuration(file: string): Promise<number | null> {
    const header = Number.parseFloat(await this.ffprobe(['-show_entries', 'format=duration', file]));
    if (Number.isFinite(header)) return round3(header);
    let first = Infinity;
    let last = -Infinity;
    for (const line of (await this.ffprobe(['-show_entries', 'packet=pts_time,duration_time', file])).split('\n')) {
      const [pts, duration] = line.split(',').map(Number.parseFloat);
      if (!Number.isFinite(pts)) continue;
      first = Math.min(first, pts);
      last = Math.max(last, pts + (Number.isFinite(duration) ? duration : 0));
    }
    return last > first ? round3(last - first) : null;
  }

  /** ffprobe's CSV output ('' when it fails). */
  private ffprobe(args: string[]): Promise<string> {
    return new Promise((resolve) => {
      execFile(this.ffprobePath, ['-v', 'error', '-of', 'csv=p=0', ...args], { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => resolve(err ? '' : stdout));
    });
  }
}

function round3(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
