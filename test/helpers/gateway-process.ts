import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureBuilt } from './build.js';
import { freePort } from './free-port.js';
import { waitFor } from './gateway.js';

// The built gateway as its own process (`node dist/cli.js`, configured by environment),
// for tests that need it apart from the test runner: its own file descriptors and CPU, a
// SIGKILL, a restart on the same data folder.

export interface GatewayProcess {
  url: string;
  port: number;
  dataDir: string;
  proc: ChildProcess;
  /** What it printed so far. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs it if it still runs; removes its data folder unless `keepData`. */
  close: (opts?: { keepData?: boolean }) => Promise<void>;
}

/** `redis`: join the cluster of that Redis (REDIS_URL), with its own URL as NODE_URL. */
export async function startGatewayProcess(env: Record<string, string> = {}, opts: { dataDir?: string; redis?: string } = {}): Promise<GatewayProcess> {
  await ensureBuilt();
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'gw-proc-')));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, ['dist/cli.js'], {
    cwd: process.cwd(),
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', ICE_ADDRESSES: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', MEDIA_WORKERS: '1', ...(opts.redis ? { REDIS_URL: opts.redis, NODE_URL: url } : {}), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  proc.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  await waitFor(`gateway process on ${url}`, async () => ((await fetch(`${url}/healthz`)).ok ? true : undefined), 20_000, 100).catch((e: Error) => {
    proc.kill('SIGKILL');
    throw new Error(`${e.message}; it printed: ${output.slice(-2000)}`);
  });
  return {
    url,
    port,
    dataDir,
    proc,
    output: () => output,
    exited,
    close: async ({ keepData = false } = {}) => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      if (!keepData) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
