import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

// Tests that run the gateway as its own process (in a namespace, or to check shutdown)
// need dist/ current: build once per test run.
let built: Promise<unknown> | undefined;

export function ensureBuilt(): Promise<unknown> {
  built ??= promisify(execFile)('npx', ['tsc', '-p', 'tsconfig.json'], { timeout: 120_000 });
  return built;
}
