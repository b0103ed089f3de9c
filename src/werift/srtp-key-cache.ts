import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';

// werift makes a cipher for every SRTP packet with its session key as a raw Buffer, and on
// Node 24 node:crypto spends most of createDecipheriv turning that Buffer into a key
// (profiled: a third of a media worker's time at 10 publishers, ~14 us per packet against
// ~4 us with a KeyObject). Each key Buffer is turned into a KeyObject once and reused:
// werift passes the same Buffer for every packet of a session, so the cache (a WeakMap,
// gone with the session) hits every time. node:crypto has no other way in: the ciphers
// are created inside werift, so its factories are wrapped (in the thread that installs
// this only: each worker thread has its own node:crypto).

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

export function installSrtpKeyCache(): void {
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
