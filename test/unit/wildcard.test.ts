import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { Authorizer } from '../../src/auth/authorizer.js';
import { parseConfig } from '../../src/config/load.js';
import { matchesPattern, matchGlob, MAX_PATTERN_LENGTH } from '../../src/config/wildcard.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';

// Stream-name patterns: the same answers as before (a regex with .* per star), in time
// linear in the name and pattern, whatever the pattern (JWT permissions come from callers).

/** The old matcher: exponential on some patterns, used here only on short ones. */
function reference(pattern: string, name: string): boolean {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(name);
}

describe('wildcard patterns', () => {
  it('keeps the semantics: * is any run (also empty), everything else is itself', () => {
    const cases: [string, string, boolean][] = [
      ['*', '', true],
      ['*', 'anything', true],
      ['studio-*', 'studio-1', true],
      ['studio-*', 'studio-', true],
      ['studio-*', 'studio', false],
      ['studio-*', 'xstudio-1', false],
      ['*-cam', 'a-cam', true],
      ['*-cam', 'a-cam2', false],
      ['a*b*c', 'abc', true],
      ['a*b*c', 'aXbYc', true],
      ['a*b*c', 'acb', false],
      ['a*a', 'a', false],
      ['a*a', 'aa', true],
      ['**', 'x', true],
      ['cam1', 'cam1', true],
      ['cam1', 'cam10', false],
      ['a.b', 'aXb', false], // regex characters are literal
      ['(x)+', '(x)+', true],
      ['*ab*ab*', 'abab', true],
      ['*aab', 'aaab', true],
      ['*.example.com', 'example.com', false],
      ['*.example.com', 'a.b.example.com', true],
    ];
    for (const [pattern, name, want] of cases) expect(matchesPattern(pattern, name), `${pattern} ~ ${name}`).toBe(want);
  });

  it('agrees with the regex it replaces on every short pattern and name over {a, b, *}', () => {
    const words = (alphabet: string[], max: number): string[] => {
      const out = [''];
      for (let len = 1; len <= max; len++) for (const w of out.filter((x) => x.length === len - 1)) for (const c of alphabet) out.push(w + c);
      return out;
    };
    const patterns = words(['a', 'b', '*'], 5);
    const names = words(['a', 'b'], 6);
    for (const p of patterns) for (const n of names) if (matchesPattern(p, n) !== reference(p, n)) expect.fail(`${p} ~ ${n}: ${matchesPattern(p, n)}`);
  });

  it('answers the patterns that took seconds in linear time: at most 2(n + m) character comparisons', () => {
    const name64 = 'a'.repeat(64);
    const slow = ['*a*a*a*a*a*a*b', `${'*a'.repeat(25)}*b`, `${'a*'.repeat(120)}b`, `*${'a'.repeat(100)}*b`];
    for (const pattern of slow) {
      for (const name of [name64, 'a'.repeat(10_000), `${'ab'.repeat(5000)}c`]) {
        const count = { comparisons: 0 };
        const started = performance.now();
        expect(matchGlob(pattern, name, count)).toBe(false);
        expect(performance.now() - started, pattern).toBeLessThan(50); // measured ~0.1 ms; generous for a busy machine
        expect(count.comparisons, `${pattern} on ${name.length} characters`).toBeLessThanOrEqual(2 * (name.length + pattern.length));
      }
    }
    // ...and when they match, too.
    const count = { comparisons: 0 };
    expect(matchGlob(`${'*a'.repeat(25)}*`, 'a'.repeat(64), count)).toBe(true);
    expect(count.comparisons).toBeLessThanOrEqual(2 * (64 + 51));
  });

  it('the configuration refuses longer patterns wherever it takes one', () => {
    const long = 'x'.repeat(MAX_PATTERN_LENGTH + 1);
    const ok = 'x'.repeat(MAX_PATTERN_LENGTH);
    const places = (p: string) => [
      { auth: { tokens: [{ token: 'token-of-12-chars', permissions: [{ action: 'read', streams: p }] }] } },
      { video: { streams: [{ streams: p, maxBitrateKbps: 1000 }] } },
      { outputs: [{ streams: p, type: 'record' }] },
      { push: { allowedTargets: [`${p.slice(0, -4)}.com`] } },
    ];
    for (const input of places(long)) expect(configSchema.safeParse(input).success, JSON.stringify(input).slice(0, 60)).toBe(false);
    for (const input of places(ok)) expect(configSchema.safeParse(input).success, JSON.stringify(input).slice(0, 60)).toBe(true);
  });

  it('a JWT permission with a longer pattern is ignored, like any invalid entry; the token keeps its other rights', async () => {
    const secret = 'a-shared-secret-of-at-least-32-characters';
    const authorizer = new Authorizer(parseConfig({ auth: { jwt: { secret } } }), createLogger('silent'));
    const jwt = await new SignJWT({ permissions: [{ action: 'publish', path: '*'.repeat(MAX_PATTERN_LENGTH + 1) }, { action: 'read', path: `studio-${'*'.repeat(MAX_PATTERN_LENGTH - 7)}` }] })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(secret));
    const check = (action: 'publish' | 'read', stream: string) => authorizer.check({ action, stream, token: jwt, ip: '127.0.0.1' });
    expect(await check('publish', 'studio-1')).toMatchObject({ ok: false, status: 403 }); // '*' x 257 would match anything
    expect(await check('read', 'studio-1')).toMatchObject({ ok: true });
  });
});
