import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../test/helpers/free-port.js';
import { childrenOf } from './proc.js';
import { track, untrack } from './cleanup.js';

// The gateway under test, as a separate process built from src/ (dist/cli.js), so its CPU
// and memory (and those of its ffmpeg children) can be read from /proc. Bound to loopback:
// HTTP and ICE on 127.0.0.1 only.

export const ROOT = path.resolve(import.meta.dirname, '..');

/** Compiles src/ into dist/ (npx tsc -p tsconfig.json). Throws with tsc's output on failure. */
export function buildGateway(): void {
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    throw new Error(`build failed (npx tsc -p tsconfig.json, exit ${r.status ?? r.signal}):\n${(r.stdout + r.stderr).trim().slice(0, 4000)}`);
  }
}

export interface GatewayLogLine {
  level: number;
  msg: string;
  raw: string;
}

export class GatewayProcess {
  readonly logs: GatewayLogLine[] = [];
  /** Lines that were not pino JSON (stack traces, crashes). */
  readonly otherOutput: string[] = [];
  private exited = false;
  exitedAt: string | undefined;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exitPromise: Promise<void>;

  private constructor(
    readonly proc: ChildProcess,
    readonly url: string,
    readonly dataDir: string,
  ) {
    this.exitPromise = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exited = true;
        this.exitedAt = new Date().toISOString();
        this.exitInfo = { code, signal };
        untrack(proc);
        resolve();
      });
    });
    const onLine = (line: string) => {
      if (!line.trim()) return;
      try {
        const j = JSON.parse(line) as { level?: number; msg?: string };
        if (this.logs.length < 2000) this.logs.push({ level: j.level ?? 0, msg: j.msg ?? '', raw: line });
      } catch {
        this.otherOutput.push(line);
        if (this.otherOutput.length > 5000) this.otherOutput.splice(0, 1000); // keep the latest
      }
    };
    for (const stream of [proc.stdout, proc.stderr]) {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  get running(): boolean {
    return !this.exited;
  }

  get exitDescription(): string | undefined {
    return this.exitInfo ? `code ${this.exitInfo.code ?? '-'} signal ${this.exitInfo.signal ?? '-'} at ${this.exitedAt}` : undefined;
  }

  /** Starts `node dist/cli.js` on a free port with a throw-away data folder; resolves when /healthz answers. */
  static async start(extraEnv: Record<string, string> = {}, nodeArgs: string[] = []): Promise<GatewayProcess> {
    const port = await freePort();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gw-bench-'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      ICE_ADDRESSES: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
      ...extraEnv,
    };
    delete env.CONFIG_FILE;
    const proc = spawn(process.execPath, [...nodeArgs, 'dist/cli.js'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    track(proc, () => killTree(proc.pid));
    const gw = new GatewayProcess(proc, `http://${env.HOST}:${port}`, dataDir);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (!gw.running) throw new Error(`gateway exited at start-up (${gw.exitDescription}): ${[...gw.otherOutput, ...gw.logs.map((l) => l.raw)].join('\n').slice(0, 2000)}`);
      try {
        const r = await fetch(`${gw.url}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) return gw;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    await gw.kill();
    throw new Error('gateway did not answer /healthz within 20 s');
  }

  async api<T>(pathname: string): Promise<T> {
    const r = await fetch(`${this.url}${pathname}`, { signal: AbortSignal.timeout(10_000) });
    if (!r.ok) throw new Error(`GET ${pathname}: ${r.status}`);
    return (await r.json()) as T;
  }

  /** SIGTERM (every ffmpeg finishes its files), SIGKILL after `timeoutMs`. Returns how long the stop took. */
  async stop(timeoutMs = 20_000): Promise<{ ms: number; clean: boolean }> {
    const t0 = performance.now();
    if (!this.running) {
      killTree(this.proc.pid); // orphaned ffmpeg children, if any (they are reparented, so this finds none)
      await rm(this.dataDir, { recursive: true, force: true }).catch(() => undefined);
      return { ms: 0, clean: false };
    }
    this.proc.kill('SIGTERM');
    const clean = await Promise.race([this.exitPromise.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!clean) await this.kill();
    const ms = performance.now() - t0;
    // Orphaned ffmpeg processes (if any) would show up here as children of init; they are
    // killed by killTree below, which ran before the gateway went away.
    await rm(this.dataDir, { recursive: true, force: true }).catch(() => undefined);
    return { ms, clean: clean && this.exitInfo?.code === 0 };
  }

  /** SIGKILL the gateway and its ffmpeg children. */
  async kill(): Promise<void> {
    killTree(this.proc.pid);
    await Promise.race([this.exitPromise, sleep(3000)]);
    await rm(this.dataDir, { recursive: true, force: true }).catch(() => undefined);
  }

  /** What the gateway printed last (warnings, errors, crash output), for error messages. */
  tail(lines = 20): string {
    return [...this.logs.filter((l) => l.level >= 40 || /shutdown|stopping|signal/.test(l.msg)).map((l) => l.raw), ...this.otherOutput].slice(-lines).join('\n');
  }

  /** warn (40) and above. */
  problems(): GatewayLogLine[] {
    return this.logs.filter((l) => l.level >= 40);
  }
}

/** SIGKILL a process and its direct children (children first, so none is left orphaned). */
export function killTree(pid: number | undefined): void {
  if (!pid) return;
  try {
    for (const c of childrenOf(pid)) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  } catch {
    // /proc not readable
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
