import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentsOf } from '../helpers/hls-media.js';
import WebSocket from 'ws';
import type { RouteRule } from '../../src/http/access.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { appRoutes } from '../helpers/routes.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Access control end to end, on a gateway with credentials configured: every route the
// app registers (read from its own route list, so a new route cannot be forgotten), tried
// anonymously and with a token for each right; a token limited to publishing studio-*;
// HLS with ?token= and the segment tickets its playlist hands out; JWTs verified against
// a JWKS the test serves; an auth hook; WebSocket credentials; SSE resume; pushes to
// targets that are not allowed; the rate limit on bad credentials.

const TOKENS = {
  publish: 'publish-token-0001',
  read: 'read-token-000001',
  control: 'control-token-001',
  metrics: 'metrics-token-001',
  studio: 'studio-publish-01',
} as const;
const RIGHTS = ['publish', 'read', 'control', 'metrics'] as const;

/** A concrete path for a route pattern. */
function samplePath(rule: RouteRule): string {
  const file = rule.path.startsWith('/hls/') ? 'index.m3u8' : rule.path.startsWith('/live/') ? 'studio-1.ts' : rule.path.startsWith('/assets/') ? 'style.css' : 'x.mp4';
  return rule.path.replace(':stream', 'studio-1').replace(':name', 'studio-1').replace(':session', 'no-session').replace(':id', 'no-output').replace(':file', file);
}

/** Status of one request; long-lived answers (SSE, /live) are cut once their headers came. */
async function statusOf(base: string, rule: RouteRule, token?: string): Promise<number> {
  const method = rule.method === 'ALL' ? 'PUT' : rule.method;
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  let body: string | undefined;
  if (method === 'POST' || method === 'PATCH') {
    const whip = rule.path.startsWith('/whip/');
    headers['Content-Type'] = whip ? 'application/sdp' : 'application/json';
    body = whip ? '' : '{}';
  }
  const abort = new AbortController();
  const res = await fetch(base + samplePath(rule), { method, headers, body, signal: abort.signal });
  abort.abort();
  return res.status;
}

const denied = (status: number) => status === 401 || status === 403;

describe('access control', () => {
  let t: TestGateway;
  let jwks: http.Server;
  let hook: http.Server;
  const hookCalls: { action: string; stream: string | null; ip: string; token: string | null }[] = [];
  let keys: Awaited<ReturnType<typeof generateKeyPair>>;
  const publishers: Publisher[] = [];

  beforeAll(async () => {
    keys = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'test', alg: 'ES256' };
    jwks = http.createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    hook = http.createServer((req, res) => {
      let text = '';
      req.on('data', (d) => (text += d));
      req.on('end', () => {
        const call = JSON.parse(text) as (typeof hookCalls)[number];
        hookCalls.push(call);
        res.writeHead(call.token === 'hook-allows-read' && call.action === 'read' ? 204 : 403).end();
      });
    });
    await Promise.all([jwks, hook].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
    t = await startTestGateway({
      auth: {
        tokens: [
          ...RIGHTS.map((action) => ({ token: TOKENS[action], permissions: [{ action, streams: '*' }] })),
          { token: TOKENS.studio, permissions: [{ action: 'publish', streams: 'studio-*' }] },
        ],
        jwt: { jwksUrl: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`, issuer: 'test-issuer' },
        hook: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/auth`, cacheSeconds: 0 },
        maxFailures: 10_000, // the route walk fails on purpose many times; the limit has its own test
      },
      push: { allowedTargets: ['127.0.0.2'] },
      log: { level: 'error' }, // every refusal is logged as a warning: hundreds here, on purpose
    });
  });

  afterAll(async () => {
    for (const p of publishers) await p.stop().catch(() => undefined);
    await t?.close();
    jwks?.close();
    hook?.close();
  });

  it('every route: anonymous gets 401 unless public; each right opens exactly its routes', async () => {
    const rules = t.gw.access.rules;
    expect(rules.length).toBeGreaterThan(20);
    const wrong: string[] = [];
    for (const rule of rules) {
      const label = `${rule.method} ${rule.path} (${rule.action})`;
      const anonymous = await statusOf(t.url, rule);
      if (rule.action === 'public' ? denied(anonymous) : anonymous !== 401) wrong.push(`${label} anonymous: ${anonymous}`);
      for (const right of RIGHTS) {
        const status = await statusOf(t.url, rule, TOKENS[right]);
        const allowed = rule.action === 'public' || rule.action === right || (rule.action === 'metrics' && right === 'control');
        if (allowed ? denied(status) : status !== 403) wrong.push(`${label} with ${right}: ${status}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('no route bypasses the rules: every route the app has is in them, and the OpenAPI document names each right', async () => {
    const ruled = new Set(t.gw.access.rules.map((r) => `${r.method} ${r.path}`));
    expect(appRoutes(t.gw.app).filter((r) => !ruled.has(r))).toEqual([]);
    const doc = (await (await fetch(`${t.url}/api/openapi.json`)).json()) as { paths: Record<string, Record<string, { 'x-right'?: string }>> };
    for (const rule of t.gw.access.rules) {
      const op = doc.paths[rule.path.replace(/:(\w+)/g, '{$1}')]?.[rule.method.toLowerCase()];
      if (op) expect(op['x-right'] ?? 'public', `${rule.method} ${rule.path}`).toBe(rule.action);
    }
  });

  it('a 401 says why in one line, as JSON on the API and plain text on WHIP, and asks for a Bearer token', async () => {
    const api = await fetch(`${t.url}/api/streams`);
    expect(api.status).toBe(401);
    expect(api.headers.get('www-authenticate')).toBe('Bearer');
    expect(await api.json()).toEqual({ error: 'unauthorized', message: expect.stringMatching(/credentials required/) });
    const whip = await fetch(`${t.url}/whip/x`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: 'v=0' });
    expect(whip.status).toBe(401);
    expect((await whip.text()).trim()).toBe('credentials required: send Authorization: Bearer <token> (players: ?token=<token>)');
    // A token no static entry or JWT knows goes to the hook, which refuses it here.
    const unknown = await fetch(`${t.url}/whip/x`, { method: 'POST', headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer not-a-known-token' }, body: 'v=0' });
    expect(unknown.status).toBe(403);
    expect((await unknown.text()).trim()).toBe('refused by the auth hook (status 403)');
  });

  it('a token for publish on studio-* publishes studio-1 and nothing else', async () => {
    const pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/studio-1`, token: TOKENS.studio, video: true, audio: true });
    publishers.push(pub);
    expect(pub.status, pub.errorText).toBe(201);
    await pub.connected();
    await waitFor('studio-1 live', () => t.gw.registry.get('studio-1')?.state === 'live');

    const other = await fetch(`${t.url}/whip/other-1`, { method: 'POST', headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${TOKENS.studio}` }, body: 'v=0' });
    expect(other.status).toBe(403);
    expect(await other.text()).toMatch(/publish right for stream other-1/);
    const as = (path: string, init: RequestInit = {}) => fetch(`${t.url}${path}`, { ...init, headers: { Authorization: `Bearer ${TOKENS.studio}`, 'Content-Type': 'application/json' } });
    expect((await as('/api/streams')).status).toBe(403);
    expect((await as('/api/streams/studio-1')).status).toBe(403);
    expect((await as('/hls/studio-1/index.m3u8')).status).toBe(403);
    expect((await as('/api/streams/studio-1/outputs', { method: 'POST', body: '{"type":"record"}' })).status).toBe(403);
    expect((await as('/api/streams/studio-1', { method: 'DELETE' })).status).toBe(403);
    expect((await as('/metrics')).status).toBe(403);
    expect(t.gw.registry.get('studio-1')?.state).toBe('live');
  });

  it('HLS: the playlist opens with ?token=, names its segments with a ticket for that stream only', async () => {
    const playlist = await waitFor('playlist with segments', async () => {
      const res = await fetch(`${t.url}/hls/studio-1/index.m3u8?token=${TOKENS.read}`);
      const text = res.ok ? await res.text() : '';
      return /\.(ts|m4s)\?ticket=/.test(text) ? text : undefined;
    }, 20_000);
    expect(playlist).not.toContain(TOKENS.read);
    const segment = segmentsOf(playlist)[0].uri;
    expect(segment).toMatch(/\.(ts|m4s)\?ticket=/);
    const ok = await fetch(`${t.url}/hls/studio-1/${segment}`);
    expect(ok.status).toBe(200);
    expect((await ok.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    const forged = segment.replace(/ticket=([^.]+)\.(.*)$/, (_m, exp: string) => `ticket=${exp}.AAAA`);
    expect((await fetch(`${t.url}/hls/studio-1/${forged}`)).status).toBe(401);
    // A ticket is for its stream: it does not open another stream's files.
    expect((await fetch(`${t.url}/hls/studio-2/${segment}`)).status).toBe(401);
  });

  it('JWT from a JWKS: MediaMTX-style permissions, expiry, issuer and signature are checked', async () => {
    const sign = (claims: Record<string, unknown>, opts: { exp?: string; iss?: string } = {}) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'test' }).setIssuer(opts.iss ?? 'test-issuer').setIssuedAt().setExpirationTime(opts.exp ?? '5m').sign(keys.privateKey);
    const reader = await sign({ permissions: [{ action: 'read', path: 'studio-*' }] });
    const get = (path: string, token: string) => fetch(`${t.url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    expect((await get('/api/streams/studio-1', reader)).status).toBe(200);
    expect((await get('/api/streams/other', reader)).status).toBe(403);
    expect((await get('/api/streams/studio-1', await sign({ permissions: [{ action: 'read', path: 'studio-*' }] }, { exp: '-1m' }))).status).toBe(401);
    expect((await get('/api/streams/studio-1', await sign({ permissions: [{ action: 'read' }] }, { iss: 'someone-else' }))).status).toBe(401);
    const other = await generateKeyPair('ES256');
    const foreign = await new SignJWT({ permissions: [{ action: 'read' }] }).setProtectedHeader({ alg: 'ES256', kid: 'test' }).setIssuer('test-issuer').setExpirationTime('5m').sign(other.privateKey);
    const res = await get('/api/streams/studio-1', foreign);
    expect(res.status).toBe(401);
    expect((await res.json()).message).toMatch(/invalid token/);
  });

  it('the auth hook is asked with action, stream, address and token; its 2xx allows that action only', async () => {
    const res = await fetch(`${t.url}/api/streams/studio-1`, { headers: { Authorization: 'Bearer hook-allows-read' } });
    expect(res.status).toBe(200);
    expect(hookCalls.at(-1)).toEqual({ action: 'read', stream: 'studio-1', ip: '127.0.0.1', token: 'hook-allows-read' });
    const del = await fetch(`${t.url}/api/streams/studio-1`, { method: 'DELETE', headers: { Authorization: 'Bearer hook-allows-read' } });
    expect(del.status).toBe(403);
    expect((await del.json()).message).toMatch(/auth hook \(status 403\)/);
    expect(t.gw.registry.get('studio-1')?.state).toBe('live');
  });

  it('WebSocket: token as subprotocol or first message; subscribe needs read, publish needs the right for the name', async () => {
    const open = (protocols: string[] = []) =>
      new Promise<{ ws: WebSocket; next: () => Promise<{ type: string; code?: string; streams?: { name: string }[] }> }>((resolve, reject) => {
        const ws = new WebSocket(`${t.url.replace('http', 'ws')}/ws`, protocols);
        const queue: string[] = [];
        const waiting: ((m: string) => void)[] = [];
        ws.on('message', (m) => (waiting.length ? waiting.shift()!(String(m)) : queue.push(String(m))));
        ws.once('open', () => resolve({ ws, next: () => new Promise((r) => (queue.length ? r(JSON.parse(queue.shift()!)) : waiting.push((m) => r(JSON.parse(m))))) }));
        ws.once('error', reject);
      });
    const anon = await open();
    anon.ws.send(JSON.stringify({ type: 'subscribe' }));
    expect(await anon.next()).toMatchObject({ type: 'error', code: 'unauthorized' });
    anon.ws.send(JSON.stringify({ type: 'auth', token: TOKENS.read }));
    anon.ws.send(JSON.stringify({ type: 'subscribe' }));
    const list = await anon.next();
    expect(list.type).toBe('streams');
    expect(list.streams?.map((s) => s.name)).toContain('studio-1');
    anon.ws.send(JSON.stringify({ type: 'publish', stream: 'studio-9', sdp: 'v=0' }));
    expect(await waitFor('forbidden', async () => ((m) => (m.type === 'error' ? m : undefined))(await anon.next()))).toMatchObject({ code: 'forbidden' });
    anon.ws.close();

    const studio = await open(['webrtc-rtp-gateway', `token.${Buffer.from(TOKENS.studio).toString('base64url')}`]);
    expect(studio.ws.protocol).toBe('webrtc-rtp-gateway'); // the token is not echoed back
    studio.ws.send(JSON.stringify({ type: 'publish', stream: 'other-2', sdp: 'v=0' }));
    expect(await studio.next()).toMatchObject({ type: 'error', code: 'forbidden' });
    studio.ws.send(JSON.stringify({ type: 'publish', stream: 'studio-2', sdp: 'v=0' }));
    expect(await studio.next()).toMatchObject({ type: 'error', code: 'bad-sdp' }); // allowed: on to the SDP check
    studio.ws.close();
  });

  it('SSE: events carry ids, a client resuming with Last-Event-ID gets what it missed, filtered by its rights', async () => {
    const studioReader = await new SignJWT({ permissions: [{ action: 'read', path: 'studio-3' }] })
      .setProtectedHeader({ alg: 'ES256', kid: 'test' }).setIssuer('test-issuer').setExpirationTime('5m').sign(keys.privateKey);
    const first = t.gw.events.since(0).at(-1)?.id ?? 0;
    const pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/studio-3`, token: TOKENS.studio, video: true, audio: false });
    await pub.connected();
    await waitFor('stream.started', () => t.gw.events.since(first).some((e) => e.stream === 'studio-3' && e.type === 'stream.started'));
    await pub.stop();
    await waitFor('stream.stopped', () => t.gw.events.since(first).some((e) => e.stream === 'studio-3' && e.type === 'stream.stopped'));

    const read = async (token: string) => {
      const abort = new AbortController();
      const res = await fetch(`${t.url}/api/events`, { headers: { Authorization: `Bearer ${token}`, 'Last-Event-ID': String(first) }, signal: abort.signal });
      const reader = res.body!.getReader();
      let text = '';
      const until = Date.now() + 1500;
      while (Date.now() < until && !/event: stream\.stopped/.test(text)) {
        const chunk = await Promise.race([reader.read(), new Promise<undefined>((r) => setTimeout(r, 300))]);
        if (chunk?.value) text += Buffer.from(chunk.value).toString();
      }
      abort.abort();
      return text;
    };
    const all = await read(TOKENS.read);
    const ids = [...all.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids.length).toBeGreaterThanOrEqual(2);
    expect(ids[0]).toBeGreaterThan(first);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(all).toMatch(/event: stream\.started\ndata: \{[^\n]*"stream":"studio-3"/);
    const limited = await read(studioReader);
    expect(limited).toMatch(/"stream":"studio-3"/);
    expect(limited).not.toMatch(/"stream":"studio-1"/);
  });

  it('outputs may send only to allowed targets: others get 403 naming push.allowedTargets', async () => {
    const post = (body: unknown) =>
      fetch(`${t.url}/api/streams/studio-1/outputs`, { method: 'POST', headers: { Authorization: `Bearer ${TOKENS.control}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    for (const body of [
      { type: 'rtp', host: '127.0.0.1', videoPort: 5004 },
      { type: 'rtp-mpegts', host: '127.0.0.1', port: 5004 },
      { type: 'srt', url: 'srt://127.0.0.1:9000' },
      { type: 'udp', url: 'udp://10.1.2.3:9000' },
      { type: 'rtmp', url: 'rtmp://localhost/live/key' },
    ]) {
      const res = await post(body);
      const json = (await res.json()) as { message: string };
      expect([res.status, json.message], JSON.stringify(body)).toEqual([403, expect.stringMatching(/(host|url): .*(not an allowed push target|private address).*push\.allowedTargets/)]);
    }
    const allowed = await post({ type: 'rtp', host: '127.0.0.2', videoPort: 5004 });
    expect(allowed.status).toBe(201);
    expect(t.gw.registry.get('studio-1')?.outputs.size).toBeGreaterThanOrEqual(2);
  });

  it('a POST without a JSON body type is refused with 415, and a bad JSON body with 400, both as JSON', async () => {
    const post = (type: string, body: string) =>
      fetch(`${t.url}/api/streams/studio-1/outputs`, { method: 'POST', headers: { Authorization: `Bearer ${TOKENS.control}`, 'Content-Type': type }, body });
    const plain = await post('text/plain', '{"type":"hls"}');
    expect(plain.status).toBe(415);
    expect(await plain.json()).toMatchObject({ error: expect.any(String), message: expect.stringMatching(/application\/json/) });
    const broken = await post('application/json', '{"type":');
    expect(broken.status).toBe(400);
    expect((await broken.json()).message).toBeTruthy();
  });
});

describe('bad credentials from one address are slowed down', () => {
  it('after maxFailures within the window: 429 with Retry-After, even for a good token', async () => {
    const t = await startTestGateway({ auth: { tokens: [{ token: 'good-token-0001', permissions: [{ action: 'read', streams: '*' }] }], maxFailures: 3, failureWindowSeconds: 60 }, log: { level: 'error' } });
    try {
      const get = (token: string) => fetch(`${t.url}/api/streams`, { headers: { Authorization: `Bearer ${token}` } });
      expect((await get('good-token-0001')).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await get(`guess-${i}`)).status).toBe(401);
      const limited = await get('good-token-0001');
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(50);
      expect((await limited.json()).message).toMatch(/too many failed attempts from 127\.0\.0\.1/);
    } finally {
      await t.close();
    }
  });
});
