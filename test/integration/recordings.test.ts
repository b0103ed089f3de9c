import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffprobe } from '../helpers/ffprobe.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Nothing recorded is lost: a recorder killed with SIGKILL comes back writing a second
// part (the first is never reopened or truncated), names stay unique within one second,
// a recording being written cannot be deleted, recordings an earlier gateway left open are
// measured at start, and a full disk (a small tmpfs) ends a recording as failed with
// "disk full" while keeping what it wrote. Real ffmpeg, real files, checked with ffprobe.

const run = promisify(execFile);

interface Recording {
  stream: string;
  file: string;
  url: string;
  bytes: number;
  durationSeconds: number | null;
  endedAt: string | null;
  state: string;
  error?: string;
  parts: { file: string; bytes: number; durationSeconds: number | null }[];
}

async function recordings(base: string): Promise<Recording[]> {
  return (await (await fetch(`${base}/api/recordings`)).json()) as Recording[];
}

async function startRecord(base: string, stream: string, body: Record<string, unknown> = {}): Promise<{ status: number; id?: string; url?: string; text: string }> {
  const res = await fetch(`${base}/api/streams/${stream}/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'record', ...body }) });
  const text = await res.text();
  if (res.status !== 201) return { status: res.status, text };
  const json = JSON.parse(text) as { id: string; urls: { file: string } };
  return { status: 201, id: json.id, url: json.urls.file, text };
}

describe('recordings lose nothing', () => {
  let t: TestGateway;
  let pub: Publisher;

  beforeAll(async () => {
    t = await startTestGateway({ hls: { auto: false }, recordings: { minFreeMB: 0 } });
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/rec1`, width: 320, height: 240, gop: 30 });
    await pub.connected();
    await waitFor('rec1 live', async () => ((await (await fetch(`${t.url}/api/streams/rec1`)).json()) as { state: string }).state === 'live' || undefined);
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('a recorder killed with SIGKILL writes its next part, never over a file that is there; the first keeps everything it had', async () => {
    const rec = await startRecord(t.url, 'rec1');
    expect(rec.status, rec.text).toBe(201);
    const output = () => t.gw.registry.get('rec1')!.outputs.get(rec.id!)!;
    await waitFor('recording running', () => output().state === 'running' || undefined);
    const first = path.join(t.dataDir, 'recordings', 'rec1', path.basename(rec.url!));
    await waitFor('3 s recorded', async () => ((await stat(first)).size > 150_000 ? true : undefined), 15_000);
    const before = (await stat(first)).size;
    // Someone else's file where part 2 would go: it is skipped, not overwritten.
    const foreign = first.replace(/\.mp4$/, '.part2.mp4');
    await writeFile(foreign, 'not the gateway\'s');
    process.kill(output().pid!, 'SIGKILL');
    await waitFor('restarted', () => (output().state === 'running' && output().info().restarts === 1) || undefined, 15_000);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await fetch(`${t.url}/api/streams/rec1/outputs/${rec.id}`, { method: 'DELETE' })).status).toBe(204);
    const listed = await waitFor('recording finished', async () => (await recordings(t.url)).find((r) => r.url === rec.url && r.state === 'finished'));
    // The output's own folder (its session SDP) went with it.
    await waitFor('output folder removed', () => stat(path.join(t.dataDir, 'outputs', 'rec1', rec.id!)).then(() => undefined, () => true));
    expect(listed.parts.map((p) => p.file)).toEqual([path.basename(first), path.basename(first).replace(/\.mp4$/, '.part3.mp4')]);
    expect(await readFile(foreign, 'utf8')).toBe("not the gateway's");
    // The first part was not reopened: it has at least what it had before the kill.
    expect((await stat(first)).size).toBeGreaterThanOrEqual(before);
    for (const part of listed.parts) {
      const probe = await ffprobe(path.join(t.dataDir, 'recordings', 'rec1', part.file));
      expect(Number(probe.format.duration), part.file).toBeGreaterThan(1);
      expect(part.durationSeconds).toBeGreaterThan(1);
    }
    expect(listed.durationSeconds).toBeCloseTo(listed.parts.reduce((s, p) => s + (p.durationSeconds ?? 0), 0), 1);
    // Each part downloads; deleting the recording deletes them all.
    expect((await fetch(`${t.url}/recordings/rec1/${listed.parts[1].file}`)).status).toBe(200);
    expect((await fetch(`${t.url}/api/recordings/rec1/${listed.file}`, { method: 'DELETE' })).status).toBe(204);
    expect((await recordings(t.url)).find((r) => r.file === listed.file)).toBeUndefined();
    await expect(stat(path.join(path.dirname(first), listed.parts[1].file))).rejects.toThrow();
  });

  it('refuses WebM for an H.264 publisher, saying what it holds', async () => {
    const res = await startRecord(t.url, 'rec1', { format: 'webm' });
    expect(res.status).toBe(400);
    expect(res.text).toMatch(/format: webm holds only VP8\/VP9 and Opus, kept as sent \(videoCodec original\); stream rec1 sends H264/);
  });

  it('two recordings started in the same second get two names', async () => {
    const [a, b] = await Promise.all([startRecord(t.url, 'rec1', { format: 'mkv' }), startRecord(t.url, 'rec1', { format: 'mkv' })]);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.url).not.toBe(b.url); // (before, both got <stream>_<time>.mkv when started within one second)
    for (const r of [a, b]) await waitFor('recording', () => t.gw.registry.get('rec1')?.outputs.get(r.id!)?.state === 'running' || undefined);
    // Deleting one while it is written is refused, and says what to do.
    const res = await fetch(`${t.url}/api/recordings/rec1/${path.basename(a.url!)}`, { method: 'DELETE' });
    expect(res.status).toBe(409);
    expect(await res.text()).toMatch(/still being written: stop its record output first/);
    // A second of media in each (stopped at once, a loaded machine's ffmpeg had written no frame yet: no duration).
    await new Promise((r) => setTimeout(r, 1000));
    for (const r of [a, b]) expect((await fetch(`${t.url}/api/streams/rec1/outputs/${r.id}`, { method: 'DELETE' })).status).toBe(204);
    const done = await waitFor('both finished', async () => {
      const all = (await recordings(t.url)).filter((r) => r.url === a.url || r.url === b.url);
      return all.length === 2 && all.every((r) => r.state === 'finished') ? all : undefined;
    });
    for (const r of done) expect(r.durationSeconds).toBeGreaterThan(0);
    expect((await fetch(`${t.url}/api/recordings/rec1/${path.basename(a.url!)}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('a recording an earlier gateway left open is measured and marked interrupted at start; its old HLS and session SDPs are gone', async () => {
    const rec = await startRecord(t.url, 'rec1', { format: 'mkv', maxDurationSeconds: 2 });
    const finished = await waitFor('finished', async () => (await recordings(t.url)).find((r) => r.url === rec.url && r.state === 'finished'), 15_000);
    // As a gateway that was killed leaves it: still "recording", no end, no duration.
    const sidecar = path.join(t.dataDir, 'recordings', 'rec1', `${finished.file}.json`);
    const side = JSON.parse(await readFile(sidecar, 'utf8')) as Record<string, unknown>;
    await writeFile(sidecar, JSON.stringify({ ...side, state: 'recording', endedAt: null, durationSeconds: null }));
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gw-rec-'));
    await mkdir(path.join(dir, 'recordings', 'rec1'), { recursive: true });
    for (const f of [finished.file, `${finished.file}.json`]) await writeFile(path.join(dir, 'recordings', 'rec1', f), await readFile(path.join(t.dataDir, 'recordings', 'rec1', f)));
    // An ended stream's HLS and an output's session SDP, as the earlier run left them.
    await mkdir(path.join(dir, 'hls', 'old1'), { recursive: true });
    await writeFile(path.join(dir, 'hls', 'old1', 'index.m3u8'), '#EXTM3U\n');
    await mkdir(path.join(dir, 'outputs', 'old1', 'abcd1234'), { recursive: true });
    await writeFile(path.join(dir, 'outputs', 'old1', 'abcd1234', 'session.sdp'), 'v=0\n');
    const second = await startTestGateway({ dataDir: dir });
    try {
      const [r] = await recordings(second.url);
      expect(r).toMatchObject({ file: finished.file, state: 'interrupted' });
      expect(r.durationSeconds).toBeGreaterThan(1);
      expect(r.endedAt).not.toBeNull();
      expect((await fetch(`${second.url}/hls/old1/index.m3u8`)).status).toBe(404);
      await expect(stat(path.join(dir, 'outputs', 'old1'))).rejects.toThrow();
    } finally {
      await second.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// A tmpfs of a few MB as the data folder: mount needs root (the tests run as root in CI).
async function tmpfs(sizeMB: number): Promise<{ dir: string; unmount: () => Promise<void> } | undefined> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gw-full-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMB}m`, 'tmpfs', dir]);
  } catch {
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
  return {
    dir,
    unmount: async () => {
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const canMount = process.getuid?.() === 0;

/** A gateway on `dataDir` (no HLS) with a live werift publisher on `name`, for `use`. */
async function withLiveStream(dataDir: string, minFreeMB: number, name: string, videoKbps: number, use: (t: TestGateway) => Promise<void>): Promise<void> {
  const t = await startTestGateway({ dataDir, hls: { auto: false }, recordings: { minFreeMB } });
  const pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/${name}`, width: 640, height: 360, videoKbps, gop: 30 });
  try {
    await pub.connected();
    await waitFor('live', async () => ((await (await fetch(`${t.url}/api/streams/${name}`)).json()) as { state: string }).state === 'live' || undefined);
    await use(t);
  } finally {
    await pub.stop();
    await t.close();
  }
}

describe.skipIf(!canMount)(`a full disk${canMount ? '' : ' (skipped: mounting a tmpfs needs root)'}`, () => {
  it('ENOSPC ends the recording as failed ("disk full") and keeps what it wrote; a new one is refused with 507', async () => {
    const fs = await tmpfs(4);
    expect(fs, 'mount -t tmpfs').toBeDefined();
    try {
      await withLiveStream(fs!.dir, 0, 'full1', 3000, async (t) => {
        const rec = await startRecord(t.url, 'full1');
        expect(rec.status, rec.text).toBe(201);
        const failed = await waitFor('recording failed on the full disk', async () => {
          const o = (await (await fetch(`${t.url}/api/streams/full1/outputs/${rec.id}`)).json()) as { state: string; error?: string; restarts: number };
          return o.state === 'failed' ? o : undefined;
        }, 40_000);
        expect(failed.error).toMatch(/^disk full: .*No space left on device/);
        expect(failed.restarts).toBe(0); // not restarted into a new part every few seconds
        const listed = await waitFor('listed as failed', async () => (await recordings(t.url)).find((r) => r.url === rec.url && r.state === 'failed'));
        expect(listed.error).toMatch(/disk full/);
        expect(listed.parts).toHaveLength(1);
        expect(listed.bytes).toBeGreaterThan(2_000_000);
        // What was written plays (fragmented MP4: complete up to the last fragment).
        const probe = await ffprobe(path.join(fs!.dir, 'recordings', 'full1', listed.file));
        expect(Number(probe.format.duration)).toBeGreaterThan(2);
      });
      // With a minimum configured, the nearly full disk refuses the next recording at once.
      await withLiveStream(fs!.dir, 1, 'full2', 500, async (t) => {
        const refused = await startRecord(t.url, 'full2');
        expect(refused.status).toBe(507);
        expect(refused.text).toMatch(/no room for a recording \(disk full: \d+ MB free .* below recordings\.minFreeMB \(1\)\)/);
      });
    } finally {
      await fs!.unmount();
    }
  });

  it('below recordings.minFreeMB a running recording is finished and stopped before the disk is full', async () => {
    const fs = await tmpfs(8);
    expect(fs, 'mount -t tmpfs').toBeDefined();
    try {
      await withLiveStream(fs!.dir, 4, 'full3', 3000, async (t) => {
        const rec = await startRecord(t.url, 'full3', { format: 'mkv' });
        expect(rec.status, rec.text).toBe(201);
        const listed = await waitFor('stopped as failed', async () => (await recordings(t.url)).find((r) => r.url === rec.url && r.state === 'failed'), 40_000);
        expect(listed.error).toMatch(/^disk full: \d+ MB free .* below recordings\.minFreeMB \(4\)$/);
        // Stopped cleanly (MKV finalised), never reaching ENOSPC: it plays to its end.
        const probe = await ffprobe(path.join(fs!.dir, 'recordings', 'full3', listed.file));
        expect(Number(probe.format.duration)).toBeGreaterThan(2);
        expect(listed.durationSeconds).toBeGreaterThan(2);
      });
    } finally {
      await fs!.unmount();
    }
  });
});
