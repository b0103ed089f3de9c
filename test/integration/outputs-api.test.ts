import http from 'node:http';
import { readdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../src/http/openapi.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { appRoutes } from '../helpers/routes.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// The output REST API end to end: validation, outputs declared in the configuration,
// webhooks (with a retry), the live event feed, and the OpenAPI document against the
// routes the app really has.

interface Hook {
  type: string;
  stream: string;
  output?: { type: string };
  recording?: { durationSeconds: number | null; url: string };
}

describe('output API, events and OpenAPI', () => {
  let t: TestGateway;
  let pub: Publisher;
  let hookServer: http.Server;
  const hooks: Hook[] = [];
  let failFirst = true;

  beforeAll(async () => {
    hookServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (failFirst) {
          failFirst = false; // the first delivery fails: the gateway must retry it
          res.writeHead(500).end();
          return;
        }
        hooks.push(JSON.parse(body) as Hook);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', () => r()));
    const hookUrl = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hook`;
    t = await startTestGateway({
      outputs: [{ streams: 'studio-*', type: 'record', params: { format: 'mkv' } }],
      webhooks: { urls: [hookUrl], timeoutMs: 2000, retries: 2 },
    });
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
    hookServer.close();
  });

  it('starts the outputs the configuration declares for a matching name, and sends events', async () => {
    const feed = await fetch(`${t.url}/api/events`);
    expect(feed.headers.get('content-type')).toContain('text/event-stream');
    const reader = feed.body!.getReader();
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/studio-1`, width: 320, height: 180, gop: 30 });
    await pub.connected();
    const outputs = await waitFor('record + hls running', async () => {
      const list = (await (await fetch(`${t.url}/api/streams/studio-1/outputs`)).json()) as { type: string; state: string; id: string }[];
      return list.length === 2 && list.every((o) => o.state === 'running') ? list : undefined;
    });
    expect(outputs.map((o) => o.type).sort()).toEqual(['hls', 'record']);
    let text = '';
    const decoder = new TextDecoder();
    await waitFor('SSE events', async () => {
      const { value } = await reader.read();
      text += decoder.decode(value);
      return text.includes('event: output.started') && text.includes('event: stream.started') ? true : undefined;
    });
    await reader.cancel();
    const rec = outputs.find((o) => o.type === 'record')!;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await fetch(`${t.url}/api/streams/studio-1/outputs/${rec.id}`, { method: 'DELETE' })).status).toBe(204);
    await pub.stop();
    const finished = await waitFor('webhooks', () => {
      const types = hooks.map((h) => h.type);
      return ['stream.started', 'output.started', 'recording.finished', 'stream.stopped'].every((x) => types.includes(x)) ? hooks : undefined;
    }, 20_000);
    const recording = finished.find((h) => h.type === 'recording.finished')!;
    expect(recording.stream).toBe('studio-1');
    expect(recording.recording?.url).toMatch(/^\/recordings\/studio-1\/studio-1_\d{8}-\d{6}\.mkv$/);
    expect(recording.recording?.durationSeconds).toBeGreaterThan(0.5);
  });

  it('validates output requests with a 4xx naming the problem', async () => {
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/api1`, width: 320, height: 180, gop: 30, audio: false });
    await pub.connected();
    await waitFor('live', async () => ((await (await fetch(`${t.url}/api/streams/api1`)).json()) as { state: string }).state === 'live' || undefined);
    const post = async (name: string, body: string) => {
      const res = await fetch(`${t.url}/api/streams/${name}/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      const text = await res.text();
      expect(JSON.parse(text), 'API errors are JSON {error, message}').toMatchObject({ error: expect.any(String), message: expect.any(String) });
      return `${res.status} ${(JSON.parse(text) as { message: string }).message}`;
    };
    expect(await post('nobody', '{"type":"record"}')).toBe('404 no stream named nobody');
    expect(await post('api1', '{"type":"mp3"}')).toMatch(/^400 type: unknown output type "mp3" \(one of .*record.*\)/);
    expect(await post('api1', '{}')).toMatch(/^400 type: required/);
    expect(await post('api1', '[1,2]')).toMatch(/^400 body must be a JSON object/);
    expect(await post('api1', '{"type": ')).toMatch(/^400 /);
    expect(await post('api1', '{"type":"hls","segmentSeconds":60}')).toMatch(/^409 stream api1 already has a hls output|^400 segmentSeconds/);
    expect(await post('api1', '{"type":"record","format":"avi"}')).toMatch(/^400 format: .*mp4.*mkv/);
    expect(await post('api1', '{"type":"rtp","host":"127.0.0.1","videoPort":5001}')).toMatch(/^400 videoPort: must be even/);
    expect(await post('api1', '{"type":"rtp","host":"127.0.0.1"}')).toMatch(/^400 .*videoPort, audioPort or both/);
    expect(await post('api1', '{"type":"rtp-mpegts","host":"a b","port":5000}')).toMatch(/^400 host: must match/);
    expect(await post('api1', '{"type":"hls"}')).toBe('409 stream api1 already has a hls output');
    // Push URLs: only real push targets reach ffmpeg (it once wrote "u\tdp:x" as a file
    // into the gateway's working directory, and opened srt listeners on every interface).
    const cwdBefore = await readdir(process.cwd());
    expect(await post('api1', JSON.stringify({ type: 'udp', url: 'u\tdp:x' }))).toBe('400 url: must not contain spaces or control characters');
    expect(await post('api1', JSON.stringify({ type: 'udp', url: 'udp://127.0.0.1:5000 -y out.ts' }))).toBe('400 url: must not contain spaces or control characters');
    expect(await post('api1', JSON.stringify({ type: 'srt', url: 'srt://0.0.0.0:9000?mode=listener' }))).toMatch(/^400 url: must name the host to push to, not 0\.0\.0\.0/);
    expect(await post('api1', JSON.stringify({ type: 'srt', url: 'srt://127.0.0.1:9000?mode=listener' }))).toMatch(/^400 url: must push to a listener, not listen itself/);
    expect(await post('api1', JSON.stringify({ type: 'udp', url: 'udp://no-such-host.invalid:5000' }))).toBe('400 url: push target host no-such-host.invalid does not resolve');
    expect(await readdir(process.cwd())).toEqual(cwdBefore);
    expect((await fetch(`${t.url}/api/streams/api1/outputs/nope`)).status).toBe(404);
    expect((await fetch(`${t.url}/api/streams/api1/outputs/nope`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${t.url}/api/recordings/api1/..%2F..%2Fetc%2Fpasswd`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${t.url}/recordings/..%2Fhls/index.m3u8`)).status).toBe(404);
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });

  it('describes every route in /api/openapi.json, and every documented route exists', async () => {
    const doc = (await (await fetch(`${t.url}/api/openapi.json`)).json()) as ReturnType<typeof openApiDocument> & { paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`));
    const routes = appRoutes(t.gw.app);
    const pages = ['GET /', 'GET /publish', 'GET /publish/:name', 'GET /watch/:name', 'GET /vendor/hls.min.js', 'GET /assets/:file'];
    const normalise = (r: string) => r.replace(/:\w+/g, ':p');
    expect(routes.filter((r) => !pages.includes(r)).map(normalise).sort()).toEqual([...new Set(documented.map(normalise))].sort());
    // every documented route answers with something other than "no route"
    for (const route of documented) {
      const [method, p] = route.split(' ');
      if (p === '/api/events' || p === '/live/:file') continue; // endless streams, checked elsewhere
      const res = await fetch(`${t.url}${p.replace(/:\w+/g, 'x')}`, { method, ...(method === 'POST' ? { body: '{}', headers: { 'Content-Type': 'application/sdp' } } : {}) });
      expect(await res.text(), route).not.toMatch(/^no route for/);
    }
  });
});
