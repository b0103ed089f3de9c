import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { freeUdpPort } from '../helpers/free-port.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { makeOffer } from '../helpers/offer.js';
import { openObjects, validate, type JsonSchema } from '../helpers/strict-schema.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// /api/openapi.json against what the gateway really answers: a live werift publisher
// (H.264 + Opus) with HLS and its shared AAC encoder, a recording, an rtp output, a
// browser's sender report, a second offer with a section the gateway leaves out, TURN
// credentials, errors, and the events all of that made. Every body is checked against the
// schema the document gives for its route and status, and a property the document does
// not describe fails the test (test/helpers/strict-schema.ts).

interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }> }>>;
}

const NAME = 'doc1';

/** The schema the document gives for a response to `method path` with `status` as `type` (false: none, nothing passes). */
function responseSchema(doc: Doc, method: string, path: string, status: number, type = 'application/json'): JsonSchema {
  const template = Object.keys(doc.paths).find((p) => new RegExp(`^${p.replace(/\{\w+\}/g, '[^/]+')}$`).test(path));
  return (template && doc.paths[template][method.toLowerCase()]?.responses[String(status)]?.content?.[type]?.schema) || false;
}

/** An offer with two video sections: the gateway takes one and lists the other in ignoredMedia. It never connects. */
function offerWithTwoVideos(): Promise<string> {
  return makeOffer({ videoSections: 2, audio: false });
}

/** The events the gateway kept, read from the SSE feed as a client resuming from 0 gets them. */
async function replayedEvents(url: string, until: RegExp): Promise<unknown[]> {
  const abort = new AbortController();
  const res = await fetch(`${url}/api/events`, { headers: { 'Last-Event-ID': '0' }, signal: abort.signal });
  const reader = res.body!.getReader();
  let text = '';
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && !until.test(text)) {
    const chunk = await Promise.race([reader.read(), new Promise<undefined>((r) => setTimeout(r, 300))]);
    if (chunk?.value) text += Buffer.from(chunk.value).toString();
  }
  abort.abort();
  return [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]) as unknown);
}

describe('/api/openapi.json describes every live response', () => {
  let t: TestGateway;
  let pub: Publisher;
  let doc: Doc;
  /** Each body checked: what was asked, and the problems found. */
  const checked: { what: string; body: unknown; problems: string[] }[] = [];

  const check = async (method: string, path: string, init: RequestInit = {}): Promise<unknown> => {
    const res = await fetch(`${t.url}${path}`, { method, ...init });
    const body = (await res.json()) as unknown;
    const schema = responseSchema(doc, method, path, res.status);
    checked.push({ what: `${method} ${path} ${res.status}`, body, problems: schema === false ? ['the document describes no such response'] : validate(schema, body, doc) });
    return body;
  };
  const json = (body: unknown): RequestInit => ({ body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });

  beforeAll(async () => {
    // TURN with a shared secret, so /api/ice-servers hands out credentials; the gateway's own peers do not use it.
    t = await startTestGateway({ ice: { turnUrls: ['turn:127.0.0.1:3478?transport=udp'], turnSecret: 'openapi-test', turnForGateway: false } });
    doc = (await (await fetch(`${t.url}/api/openapi.json`)).json()) as Doc;
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/${NAME}` });
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('closes every object schema of a JSON response (additionalProperties)', () => {
    const open = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.entries(ops).flatMap(([method, op]) =>
        Object.entries(op.responses).flatMap(([status, r]) =>
          Object.entries(r.content ?? {}).flatMap(([type, c]) => (type.endsWith('json') || type === 'text/event-stream' ? openObjects(c.schema, doc).map((o) => (o.startsWith('#/') ? o : `${method} ${p} ${status}: ${o}`)) : [])),
        ),
      ),
    );
    // the document itself is an object of any shape
    expect([...new Set(open)].filter((o) => !o.startsWith('get /api/openapi.json'))).toEqual([]);
  });

  it('a stream with tracks, ICE, outputs, encoders, a sender report and ignored media; recordings, health, ICE servers, errors and events', async () => {
    await pub.connected();
    const live = await waitFor('live, with ICE, the AAC encoder running and HLS running', async () => {
      const s = (await (await fetch(`${t.url}/api/streams/${NAME}`)).json()) as { state: string; ice?: unknown; tracks: { kind: string; packets: number; encoder?: { state: string } }[]; outputs: { type: string; state: string }[]; session: string };
      const audio = s.tracks.find((tr) => tr.kind === 'audio');
      return s.state === 'live' && s.ice && audio?.encoder?.state === 'running' && s.outputs.some((o) => o.type === 'hls' && o.state === 'running') ? s : undefined;
    }, 30_000);

    // The publisher's browser reports what it sends (as the built-in publish page does).
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/ws`);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    ws.send(JSON.stringify({ type: 'sender-stats', stream: NAME, session: live.session, stats: { frameWidth: 640, frameHeight: 360, framesPerSecond: 30, bitrateKbps: 900, targetKbps: 1000, availableKbps: 2000, qualityLimitationReason: 'none' } }));
    await waitFor('sender report', async () => ((await (await fetch(`${t.url}/api/streams/${NAME}`)).json()) as { sender?: unknown }).sender);
    ws.close();

    const record = (await check('POST', `/api/streams/${NAME}/outputs`, json({ type: 'record', format: 'mp4' }))) as { id: string };
    await check('POST', `/api/streams/${NAME}/outputs`, json({ type: 'rtp', host: '127.0.0.1', videoPort: await freeUdpPort(), audioPort: await freeUdpPort() }));
    await waitFor('recording for 2 s', async () => {
      const o = (await (await fetch(`${t.url}/api/streams/${NAME}/outputs/${record.id}`)).json()) as { state: string; uptimeSeconds?: number };
      return o.state === 'running' && (o.uptimeSeconds ?? 0) >= 2;
    }, 20_000);

    const other = await fetch(`${t.url}/whip/doc2`, { method: 'POST', body: await offerWithTwoVideos(), headers: { 'Content-Type': 'application/sdp' } });
    expect(other.status).toBe(201);

    const streams = (await check('GET', '/api/streams')) as { name: string }[];
    expect(streams.map((s) => s.name).sort()).toEqual([NAME, 'doc2']);
    const stream = (await check('GET', `/api/streams/${NAME}`)) as Record<string, unknown>;
    const connecting = (await check('GET', '/api/streams/doc2')) as { ignoredMedia: unknown[] };
    await check('GET', `/api/streams/${NAME}/outputs`);
    await check('GET', `/api/streams/${NAME}/outputs/${record.id}`);
    await check('GET', '/api/recordings');
    const nodes = (await check('GET', '/api/cluster/nodes')) as { self: boolean; streams: { name: string }[] }[];
    expect(nodes.map((n) => [n.self, n.streams.some((s) => s.name === NAME)])).toEqual([[true, true]]); // alone: itself, with its streams
    const health = (await check('GET', '/healthz')) as Record<string, unknown>;
    const servers = (await check('GET', '/api/ice-servers')) as { username?: string }[];
    await check('GET', '/api/streams/nope');
    await check('GET', `/api/streams/${NAME}/outputs/nope`);
    await check('POST', `/api/streams/${NAME}/outputs`, json({ type: 'nope' }));
    await check('POST', `/api/streams/${NAME}/outputs`, { body: '{}', headers: { 'Content-Type': 'text/plain' } });

    // A finished recording, then the stream removed: the events of all of it.
    expect((await fetch(`${t.url}/api/streams/${NAME}/outputs/${record.id}`, { method: 'DELETE' })).status).toBe(204);
    await waitFor('recording finished', async () => ((await (await fetch(`${t.url}/api/recordings`)).json()) as { state: string }[])[0]?.state === 'finished');
    const recordings = (await check('GET', '/api/recordings')) as { state: string; parts: unknown[] }[];
    expect((await fetch(`${t.url}/api/streams/${NAME}`, { method: 'DELETE' })).status).toBe(204);
    const events = await replayedEvents(t.url, /"type":"stream\.stopped","stream":"doc1"|"stream":"doc1"[^\n]*"type":"stream\.stopped"/);
    const eventSchema = responseSchema(doc, 'GET', '/api/events', 200, 'text/event-stream');
    events.forEach((e, i) => checked.push({ what: `GET /api/events [${i}]`, body: e, problems: validate(eventSchema, e, doc) }));

    // The bodies held what they are meant to show (else the check above proves little).
    const tracks = stream.tracks as Record<string, unknown>[];
    expect(tracks.map((tr) => tr.kind).sort()).toEqual(['audio', 'video']);
    expect(tracks.find((tr) => tr.kind === 'audio')).toHaveProperty('encoder.pipeline', 'aac');
    expect(tracks.find((tr) => tr.kind === 'video')).toMatchObject({ width: 640, height: 360, nacked: expect.any(Number) });
    expect(stream).toMatchObject({ ice: { local: { address: '127.0.0.1' }, remote: { address: '127.0.0.1' } }, sender: { frameWidth: 640 } });
    expect((stream.outputs as { type: string }[]).map((o) => o.type).sort()).toEqual(['hls', 'record', 'rtp']);
    expect(connecting.ignoredMedia).toHaveLength(1);
    expect(health).toMatchObject({ status: 'ok', streams: 2 });
    expect(servers[0]?.username).toMatch(/^\d+:/);
    expect(recordings).toEqual([expect.objectContaining({ state: 'finished', parts: [expect.objectContaining({ file: expect.any(String) })] })]);
    expect(new Set(events.map((e) => (e as { type: string }).type))).toEqual(new Set(['stream.started', 'output.started', 'output.stopped', 'recording.finished', 'stream.stopped']));

    expect(checked.filter((c) => c.problems.length).map((c) => ({ what: c.what, problems: c.problems }))).toEqual([]);
  });
});
