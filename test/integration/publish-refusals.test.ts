import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { PUBLISH_REFUSALS, type PublishRefusalCode } from '../../src/streams/publish-refused.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { makeOffer } from '../helpers/offer.js';
import { startRedis } from '../helpers/redis-server.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Every reason an offer to publish is refused (src/streams/publish-refused.ts), tried over
// WHIP and over the WebSocket signalling: both must say the same thing, WHIP as the
// reason's status (and Retry-After where trying again can work), WebSocket as its code
// (and retryAfterSeconds). They had drifted apart: a transcode-capacity refusal was a 503
// over WHIP and "internal" over WebSocket.

interface Refusal {
  status: number;
  code: string;
  retryAfter?: number;
}

let offer = '';
const withVideo = (codec: string) => offer.replace(/a=rtpmap:102 H264\/90000/, `a=rtpmap:102 ${codec}/90000`).replace(/a=fmtp:102 [^\r\n]*\r\n/, '');

/** A WHIP POST from `localAddress`; the refusal it got (or 201). */
function whip(base: string, stream: string, sdp: string, localAddress = '127.0.0.1'): Promise<Refusal & { location?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/whip/${stream}`, { method: 'POST', localAddress, agent: false, headers: { 'Content-Type': 'application/sdp' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: '', retryAfter: res.headers['retry-after'] ? Number(res.headers['retry-after']) : undefined, location: res.headers.location }));
    });
    req.on('error', reject);
    req.end(sdp);
  });
}

/** A WebSocket publish from `localAddress`: the error it got (or 'answer'). */
function wsPublish(base: string, stream: string, sdp: string, localAddress = '127.0.0.1'): Promise<Refusal> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, { localAddress });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'publish', stream, sdp })));
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { type: string; code?: string; retryAfterSeconds?: number };
      if (m.type === 'error') resolve({ status: PUBLISH_REFUSALS[m.code as PublishRefusalCode]?.status ?? 0, code: m.code!, retryAfter: m.retryAfterSeconds });
      else if (m.type === 'answer') resolve({ status: 201, code: 'answer' });
      else return;
      ws.close();
    });
    ws.on('error', reject);
  });
}

/** What each way must show for `code`. */
function expectRefused(got: { whip: Refusal; ws: Refusal }, code: PublishRefusalCode): void {
  const { status } = PUBLISH_REFUSALS[code];
  const retry = status === 429 || status === 503;
  expect(got.whip.status, `WHIP for ${code}`).toBe(status);
  expect(got.ws.code, `WebSocket for ${code}`).toBe(code);
  expect(got.whip.retryAfter !== undefined, `WHIP Retry-After for ${code}`).toBe(retry);
  expect(got.ws.retryAfter !== undefined, `WebSocket retryAfterSeconds for ${code}`).toBe(retry);
}

describe('every publish refusal, the same over WHIP and WebSocket', () => {
  let t: TestGateway;
  let live: Publisher;
  const tried = new Set<PublishRefusalCode>();

  beforeAll(async () => {
    offer = await makeOffer();
    t = await startTestGateway({
      media: { workers: 1 },
      streams: { maxConnectingPerAddress: 1, maxConnecting: 2 },
      transcode: { maxConcurrent: 0 },
      ice: { connectTimeoutMs: 3000 },
    });
    live = await startWeriftPublisher({ whipUrl: `${t.url}/whip/taken`, width: 160, height: 90, gop: 30 });
    expect(live.status, live.errorText).toBe(201);
    await live.connected();
  });

  afterAll(async () => {
    await live?.stop();
    await t?.close();
    // Every reason the gateway has was tried.
    expect([...tried].sort()).toEqual(Object.keys(PUBLISH_REFUSALS).sort());
  });

  const both = async (code: PublishRefusalCode, stream: string, sdp: string, from?: string) => {
    tried.add(code);
    expectRefused({ whip: await whip(t.url, stream, sdp, from), ws: await wsPublish(t.url, stream, sdp, from) }, code);
  };

  it('bad-stream-name, bad-sdp, no-codec, stream-busy, no-transcode-capacity', async () => {
    await both('bad-stream-name', 'bad%20name', offer);
    await both('bad-sdp', 'x1', 'v=0\r\nthis is not SDP\r\n');
    await both('no-codec', 'x2', withVideo('AV1').replace(/a=rtpmap:111 opus\/48000\/2/, 'a=rtpmap:111 iLBC/8000'));
    await both('stream-busy', 'taken', offer);
    await both('no-transcode-capacity', 'x3', withVideo('VP8'));
  });

  it('too-many-connecting (this address) and gateway-busy (all addresses), with a time to try again', async () => {
    // One offer that never connects from 127.0.0.1: the per-address cap (1) is reached.
    expect((await whip(t.url, 'pending1', offer)).status).toBe(201);
    await both('too-many-connecting', 'x4', offer);
    // One more from another address: the gateway's cap (2) is reached for everyone.
    expect((await whip(t.url, 'pending2', offer, '127.0.0.2')).status).toBe(201);
    await both('gateway-busy', 'x5', offer, '127.0.0.3');
    await waitFor('the offers given up', () => (t.gw.registry.all().length === 1 ? true : undefined), 10_000);
  });

  it('gateway-full: a gateway at cluster.maxSessions (alone, or with no node of its cluster having room)', async () => {
    const full = await startTestGateway({ media: { workers: 1 }, cluster: { maxSessions: 1 }, ice: { connectTimeoutMs: 3000 } });
    try {
      expect((await whip(full.url, 'first', offer)).status).toBe(201); // holds the one place while it connects
      tried.add('gateway-full');
      expectRefused({ whip: await whip(full.url, 'x7', offer), ws: await wsPublish(full.url, 'x7', offer) }, 'gateway-full');
    } finally {
      await full.close();
    }
  });

  it('cluster-unavailable: a node of a cluster whose Redis is down cannot make a new name sure to be unique', async () => {
    const redis = await startRedis();
    const node = await startTestGateway({ media: { workers: 1 }, cluster: { redis: redis.url, nodeUrl: 'http://127.0.0.1:9' } });
    try {
      await redis.stop();
      await waitFor('the node to see Redis gone', async () => ((await fetch(`${node.url}/api/streams`)).status === 503 ? true : undefined), 5000);
      tried.add('cluster-unavailable');
      expectRefused({ whip: await whip(node.url, 'x8', offer), ws: await wsPublish(node.url, 'x8', offer) }, 'cluster-unavailable');
    } finally {
      await node.close();
      await redis.close();
    }
  });

  it('unavailable: the media worker is restarting', async () => {
    await t.gw.media.terminate(0);
    await both('unavailable', 'x6', offer);
    await waitFor('the worker back', () => (t.gw.media.info()[0].running ? true : undefined), 10_000);
  });
});
