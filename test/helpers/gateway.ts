import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';

// An in-process gateway on loopback: HTTP on a free port, ICE on 127.0.0.1 only (tests
// must not send media to other interfaces), a throw-away data folder. Its loopback RTP
// ports come from the default range, which the system never hands out on its own.

export interface TestGateway {
  gw: Gateway;
  url: string;
  dataDir: string;
  close: () => Promise<void>;
}

/** `overrides.dataDir`: use (and keep) that folder instead of a throw-away one. */
export async function startTestGateway(overrides: ConfigInput = {}): Promise<TestGateway> {
  const ownDir = overrides.dataDir === undefined;
  const dataDir = overrides.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'gw-test-')));
  const config = parseConfig({
    ...overrides,
    http: { host: '127.0.0.1', port: 0, ...overrides.http },
    dataDir,
    ice: { addresses: ['127.0.0.1'], ...overrides.ice },
    // rtp: the default range (below the system's ephemeral ports); each gateway starts at a random place in it
    log: { level: (process.env.TEST_LOG_LEVEL as 'warn') ?? overrides.log?.level ?? 'warn' },
    hls: { cleanupAfterSeconds: 600, ...overrides.hls },
  });
  const gw = await Gateway.start(config, createLogger(config.log.level));
  return {
    gw,
    url: gw.url,
    dataDir,
    close: async () => {
      await gw.stop();
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
