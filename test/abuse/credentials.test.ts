import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// The small ways around the rules an audit found, each tried as an attack against a
// gateway with credentials on: wildcard patterns that backtrack, JWTs without expiry or
// with another algorithm, guesses at hook tokens, anonymous requests that lock others out,
// admin tokens in URLs, read tokens that learn where publishers are, metrics of streams a
// token may not see, framing, and WebSockets from other sites' pages.

const SECRET = 'abuse-test-hs256-secret-0123456789abcdef';
const TOKENS = {
  publish: 'abuse-cred-publish',
  read: 'abuse-cred-read-01',
  control: 'abuse-cred-control',
  studioMetrics: 'abuse-cred-metrics',
};
const STUDIO_ORIGIN = 'https://studio.example.com';

/** A request from a given loopback address (each attacker its own, so failure counts do not mix). */
function request(url: string, opts: { from?: string; method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', localAddress: opts.from, headers: opts.headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

function jwt(claims: Record<string, unknown>, opts: { alg?: string; exp?: boolean } = {}): Promise<string> {
  const s = new SignJWT(claims).setProtectedHeader({ alg: opts.alg ?? 'HS256' }).setIssuedAt();
  if (opts.exp !== false) s.setExpirationTime('5m');
  return s.sign(new TextEncoder().encode(SECRET));
}

describe('abuse: credentials and rules', () => {
  let t: TestGateway;
  let hook: http.Server;
  const publishers: Publisher[] = [];

  beforeAll(async () => {
    // A hook that knows no token: every guess is refused.
    hook = http.createServer((req, res) => req.resume().on('end', () => res.writeHead(403).end()));
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    t = await startTestGateway({
      http: { corsOrigins: [STUDIO_ORIGIN] },
      auth: {
        tokens: [
          { token: TOKENS.publish, permissions: [{ action: 'publish' }] },
          { token: TOKENS.read, permissions: [{ action: 'read' }] },
          { token: TOKENS.control, permissions: [{ action: 'control' }, { action: 'read' }] },
          { token: TOKENS.studioMetrics, permissions: [{ action: 'metrics', streams: 'studio-*' }] },
        ],
        jwt: { secret: SECRET },
        hook: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/auth`, cacheSeconds: 0 },
        maxFailures: 5,
      },
    });
    for (const name of ['studio-1', 'other-1']) {
      const p = await startWeriftPublisher({ whipUrl: `${t.url}/whip/${name}`, token: TOKENS.publish, width: 320, height: 240, gop: 30 });
      publishers.push(p);
      expect(p.status, p.errorText).toBe(201);
    }
    await waitFor('both streams live', async () => {
      const list = (await (await fetch(`${t.url}/api/streams`, { headers: bearer(TOKENS.control) })).json()) as { state: string }[];
      return list.length === 2 && list.every((s) => s.state === 'live') ? true : undefined;
    });
  }, 60_000);

  afterAll(async () => {
    for (const p of publishers) await p.stop().catch(() => undefined);
    await t?.close();
    hook?.close();
  });

  it('a JWT permission with a backtracking pattern is answered at once', async () => {
    // *a*a*a...*b against a 64-character name took 272 s with the regex matcher.
    const token = await jwt({ permissions: [{ action: 'read', streams: `${'*a'.repeat(25)}*b` }] });
    const t0 = performance.now();
    const res = await request(`${t.url}/api/streams/${'a'.repeat(64)}`, { headers: bearer(token) });
    const took = performance.now() - t0;
    expect(res.status).toBe(403);
    expect(took).toBeLessThan(1000);
  });

  it('a JWT without exp, or signed with another algorithm than the configured HS256, is refused', async () => {
    const claims = { permissions: [{ action: 'read' }] };
    expect((await request(`${t.url}/api/streams`, { headers: bearer(await jwt(claims)) })).status).toBe(200);
    const noExp = await request(`${t.url}/api/streams`, { headers: bearer(await jwt(claims, { exp: false })) });
    expect(noExp.status).toBe(401);
    expect(noExp.body).toMatch(/exp/);
    const hs512 = await request(`${t.url}/api/streams`, { headers: bearer(await jwt(claims, { alg: 'HS512' })) });
    expect(hs512.status).toBe(401);
  });

  it('guesses the auth hook refuses count towards the failure limit', async () => {
    const from = '127.0.2.1';
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await request(`${t.url}/api/streams`, { from, headers: bearer(`guess-number-${i}`) })).status);
    expect(statuses.slice(0, 5).every((s) => s === 403 || s === 401)).toBe(true);
    expect(statuses.slice(5)).toEqual([429, 429]);
  });

  it('anonymous requests do not lock valid tokens out of their address', async () => {
    const from = '127.0.2.2';
    for (let i = 0; i < 20; i++) expect((await request(`${t.url}/api/streams`, { from })).status).toBe(401);
    expect((await request(`${t.url}/api/streams`, { from, headers: bearer(TOKENS.read) })).status).toBe(200);
  });

  it('?token= is taken on read GETs (players, links) only: control, publish and metrics need the header', async () => {
    expect((await request(`${t.url}/api/streams?token=${TOKENS.read}`)).status).toBe(200);
    expect((await request(`${t.url}/hls/studio-1/index.m3u8?token=${TOKENS.read}`)).status).not.toBe(401);
    expect((await request(`${t.url}/api/streams/other-1?token=${TOKENS.control}`, { method: 'DELETE' })).status).toBe(401);
    expect((await request(`${t.url}/metrics?token=${TOKENS.control}`)).status).toBe(401);
    expect((await request(`${t.url}/whip/x?token=${TOKENS.publish}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' } })).status).toBe(401);
    // the stream is still there
    expect((await request(`${t.url}/api/streams/other-1`, { headers: bearer(TOKENS.read) })).status).toBe(200);
  });

  it("a read token does not learn where a publisher is; control does", async () => {
    const asRead = JSON.parse((await request(`${t.url}/api/streams/studio-1`, { headers: bearer(TOKENS.read) })).body) as { ice?: unknown };
    const asControl = JSON.parse((await request(`${t.url}/api/streams/studio-1`, { headers: bearer(TOKENS.control) })).body) as { ice?: { remote: { address: string } } };
    expect(asRead.ice).toBeUndefined();
    expect(asControl.ice?.remote.address).toBe('127.0.0.1');
    const list = JSON.parse((await request(`${t.url}/api/streams`, { headers: bearer(TOKENS.read) })).body) as { ice?: unknown }[];
    expect(list.every((s) => s.ice === undefined)).toBe(true);
  });

  it('/metrics shows a token only the streams it covers', async () => {
    const studio = (await request(`${t.url}/metrics`, { headers: bearer(TOKENS.studioMetrics) })).body;
    expect(studio).toMatch(/gateway_rtp_packets_total\{stream="studio-1"/);
    expect(studio).not.toMatch(/stream="other-1"/);
    expect(studio).toMatch(/^gateway_streams\{state="live"\} 2$/m); // totals stay
    const all = (await request(`${t.url}/metrics`, { headers: bearer(TOKENS.control) })).body;
    expect(all).toMatch(/stream="other-1"/);
  });

  it('the dashboard and the publish page cannot be framed; the watch page only by the listed origins', async () => {
    for (const page of ['/', '/publish/x']) {
      const res = await request(`${t.url}${page}`);
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['content-security-policy']).toBe("frame-ancestors 'none'");
    }
    expect((await request(`${t.url}/watch/x`)).headers['content-security-policy']).toBe(`frame-ancestors 'self' ${STUDIO_ORIGIN}`);
  });

  it('/ws refuses pages from origins not in http.corsOrigins', async () => {
    const open = (origin?: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`${t.url.replace('http', 'ws')}/ws`, { ...(origin ? { origin } : {}) });
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('error', () => undefined);
      });
    expect(await open('https://evil.example')).toBe(403);
    expect(await open(STUDIO_ORIGIN)).toBe(101);
    expect(await open(t.url)).toBe(101); // the gateway's own pages
    expect(await open()).toBe(101); // not a browser
  });
});
