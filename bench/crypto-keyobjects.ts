import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';

// Makes the bench's own publishers cheaper: werift creates a cipher per SRTP packet with a
// raw Buffer key, and on Node 24 node:crypto spends ~3/4 of createCipheriv/createDecipheriv
// turning that Buffer into a key (~14 us per packet vs ~4 us with a KeyObject). The publishers
// share the 2 cores with the gateway under test, so every cycle they save is left to it.
// Only this process is patched; the gateway runs unmodified (BENCH_GATEWAY_NODE_ARGS can
// load a similar shim into it for comparison).

const keys = new WeakMap<Buffer, crypto.KeyObject>();

function keyObject<T>(key: T): T | crypto.KeyObject {
  if (!Buffer.isBuffer(key)) return key;
  let k = keys.get(key);
  if (!k) {
    k = crypto.createSecretKey(key);
    keys.set(key, k);
  }
  return k;
}

let installed = false;

export function installKeyObjectCache(): void {
  if (installed) return;
  installed = true;
  type Factory = (alg: string, key: unknown, ...rest: unknown[]) => unknown;
  const c = crypto as unknown as Record<'createCipheriv' | 'createDecipheriv' | 'createHmac', Factory>;
  for (const name of ['createCipheriv', 'createDecipheriv', 'createHmac'] as const) {
    const original = c[name];
    c[name] = (alg, key, ...rest) => original(alg, keyObject(key), ...rest);
  }
  syncBuiltinESMExports();
}
