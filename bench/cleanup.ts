import type { ChildProcess } from 'node:child_process';

// Every child process and peer connection the bench starts is registered here, so that an
// error, Ctrl-C or a normal end leaves nothing running (gateway, its ffmpeg processes,
// encoder and capture ffmpeg processes).

const killers = new Map<ChildProcess, () => void>();
const closers = new Set<() => Promise<void>>();

export function track(proc: ChildProcess, kill: () => void = () => proc.kill('SIGKILL')): void {
  killers.set(proc, kill);
  proc.once('exit', () => killers.delete(proc));
}

export function untrack(proc: ChildProcess): void {
  killers.delete(proc);
}

/** An async closer (a peer connection); removed by the returned function. */
export function onCleanup(close: () => Promise<void>): () => void {
  closers.add(close);
  return () => closers.delete(close);
}

/** Synchronous last resort: SIGKILL every tracked child process. */
export function killAll(): void {
  for (const [proc, kill] of killers) {
    try {
      kill();
    } catch {
      // already gone
    }
    killers.delete(proc);
  }
}

/** Closes peer connections (bounded), then kills every child process. */
export async function cleanupAll(): Promise<void> {
  const pending = [...closers].map((c) => c().catch(() => undefined));
  closers.clear();
  await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 3000))]);
  killAll();
}

let installed = false;

export function installExitHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => killAll());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}
