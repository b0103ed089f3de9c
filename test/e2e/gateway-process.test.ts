import { existsSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { freePort } from '../helpers/free-port.js';
import { findProcesses, waitGone, waitLive, waitPlaylist } from '../helpers/e2e-api.js';
import { waitFor } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// The built gateway as users run it (`node dist/cli.js`, configured by environment): a
// publisher that vanishes without DELETE is cleaned up, and SIGTERM stops everything
// cleanly: exit code 0, playlists finished with #EXT-X-ENDLIST, no ffmpeg left behind.

describe('gateway process (dist/cli.js)', () => {
  let dataDir: string;
  let url: string;
  let gw: ChildProcess;
  let output = '';
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  const publishers: Publisher[] = [];

  beforeAll(async () => {
    await ensureBuilt();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'gw-proc-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    gw = spawn(process.execPath, ['dist/cli.js'], {
      cwd: process.cwd(),
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        ICE_ADDRESSES: '127.0.0.1',
        DATA_DIR: dataDir,
        LOG_LEVEL: 'info',
        MEDIA_WORKERS: '2',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    gw.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    gw.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    exited = new Promise((resolve) => gw.once('exit', (code, signal) => resolve({ code, signal })));
    await waitFor(`gateway on ${url} (output so far: ${output.slice(-500)})`, async () => ((await fetch(`${url}/healthz`)).ok ? true : undefined), 20_000, 100);
  }, 180_000);

  afterAll(async () => {
    for (const p of publishers) await p.stop({ delete: false }).catch(() => undefined);
    if (gw && gw.exitCode === null && gw.signalCode === null) {
      gw.kill('SIGKILL');
      await exited;
    }
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function publish(name: string): Promise<Publisher> {
    const pub = await startWeriftPublisher({ whipUrl: `${url}/whip/${name}`, width: 320, height: 240, gop: 30 });
    publishers.push(pub);
    expect(pub.status, pub.errorText).toBe(201);
    await pub.connected();
    const info = await waitLive(url, name);
    expect(info.ice).toMatchObject({ local: { address: '127.0.0.1' }, remote: { address: '127.0.0.1' } });
    return pub;
  }

  /** A stream's ffmpegs: its HLS (hls/<name>) and the AAC encoder HLS copies from (outputs/<name>/shared-aac). */
  const ffmpegsOf = async (name?: string) =>
    name ? [...(await findProcesses('ffmpeg', path.join(dataDir, 'hls', name))), ...(await findProcesses('ffmpeg', path.join(dataDir, 'outputs', name)))] : findProcesses('ffmpeg', dataDir);

  it('drops a publisher that goes away without DELETE within 10 s, and its ffmpegs', async () => {
    const pub = await publish('vanish1');
    await waitPlaylist(url, 'vanish1', 1);
    expect((await ffmpegsOf('vanish1')).length).toBe(2);
    await pub.stop({ delete: false }); // encoder killed, peer connection closed, no DELETE
    const took = await waitGone(url, 'vanish1', 15_000);
    expect(took).toBeLessThan(10_000);
    await waitFor('ffmpegs of vanish1 gone', async () => ((await ffmpegsOf('vanish1')).length === 0 ? true : undefined), 5000);
    expect(output).toMatch(/"stream":"vanish1".*"event":"closed"/);
  });

  /** A second gateway process with these settings: its exit code and what it printed. */
  async function runOnce(env: Record<string, string>): Promise<{ code: number | null; text: string }> {
    const p = spawn(process.execPath, ['dist/cli.js'], { env: { ...process.env, ICE_ADDRESSES: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (text += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000); // a gateway that did start is a failure: stop it
    const code = await new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)));
    clearTimeout(timer);
    return { code, text };
  }

  it('a second instance on a used port says so in one line and exits 1 (no stack trace)', async () => {
    const { code, text } = await runOnce({ PORT: new URL(url).port, HOST: '127.0.0.1' });
    expect(code).toBe(1);
    expect(text).toMatch(new RegExp(`error: cannot start the HTTP server: port ${new URL(url).port} is already in use`));
    expect(text).not.toMatch(/^\s+at /m);
    expect((await fetch(`${url}/healthz`)).ok).toBe(true); // the first one is unharmed
  });

  it('refuses to listen beyond loopback without credentials, naming both ways out', async () => {
    const { code, text } = await runOnce({ PORT: String(await freePort()), HOST: '0.0.0.0' });
    expect(code).toBe(2);
    expect(text).toMatch(/no credentials/);
    expect(text).toMatch(/AUTH_TOKENS/);
    expect(text).toMatch(/AUTH_MODE=none/);
  });

  // (Low-Latency HLS keeps its playlists in memory: requests held at the end are answered
  // with the ended playlist, test/unit/ll-hls.test.ts; nothing of it is left on disk.)
  it('stops on SIGTERM within 10 s with a stream on each media worker: exit code 0, no HLS left on disk, no ffmpeg left', async () => {
    await Promise.all([publish('term1'), publish('term2')]);
    await Promise.all([waitPlaylist(url, 'term1', 2), waitPlaylist(url, 'term2', 2)]);
    const streams = (await (await fetch(`${url}/api/streams`)).json()) as { name: string; worker: number }[];
    expect(streams.map((s) => s.worker).sort()).toEqual([0, 1]);
    // Per stream: its HLS and the AAC encoder that HLS copies from.
    const running = await ffmpegsOf();
    expect(running.map((p) => p.ppid)).toEqual([gw.pid, gw.pid, gw.pid, gw.pid]);

    const t0 = Date.now();
    gw.kill('SIGTERM');
    const result = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
    expect(result, output.slice(-2000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(10_000);

    for (const name of ['term1', 'term2']) expect(existsSync(path.join(dataDir, 'outputs', name, 'hls'))).toBe(false);
    expect(await ffmpegsOf()).toEqual([]);
    for (const p of running) expect(() => process.kill(p.pid, 0)).toThrow();
    expect(output).toMatch(/"event":"shutdown"/);
    expect(output).toMatch(/"event":"stopped"/);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow(); // the HTTP server is closed too
  });
});

describe('gateway process killed with SIGKILL', () => {
  it('leaves no ffmpeg behind for long: an orphaned ffmpeg exits by itself within 30 s', async () => {
    await ensureBuilt();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gw-kill-'));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const gw = spawn(process.execPath, ['dist/cli.js'], {
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', ICE_ADDRESSES: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', RTP_PORT_MIN: '46200', RTP_PORT_MAX: '46299' },
      stdio: 'ignore',
    });
    let pub: Publisher | undefined;
    try {
      await waitFor('gateway up', async () => ((await fetch(`${url}/healthz`).catch(() => undefined))?.ok ? true : undefined), 20_000);
      pub = await startWeriftPublisher({ whipUrl: `${url}/whip/kill1`, width: 320, height: 180, gop: 30 });
      await pub.connected();
      await waitPlaylist(url, 'kill1', 2);
      const running = await findProcesses('ffmpeg', dataDir);
      expect(running.length).toBe(2); // HLS and the stream's AAC encoder
      gw.kill('SIGKILL');
      await pub.stop({ delete: false });
      // Nothing tells ffmpeg its parent is gone; its RTP input going silent ends it
      // (measured: 15-20 s after the kill), the AAC encoder's as well as the HLS one's.
      await waitFor('the orphaned ffmpegs to exit', async () => ((await findProcesses('ffmpeg', dataDir)).length === 0 ? true : undefined), 30_000, 500);
    } finally {
      gw.kill('SIGKILL');
      await pub?.stop({ delete: false }).catch(() => undefined);
      for (const p of await findProcesses('ffmpeg', dataDir)) process.kill(p.pid, 'SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
