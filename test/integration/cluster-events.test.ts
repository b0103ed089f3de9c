import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayEvent } from '../../src/events/bus.js';
import { freePort } from '../helpers/free-port.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { redisServerAvailable, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// A cluster's events: every node's feed carries every node's events (each with its node),
// and the webhooks, configured alike on both nodes, get each event once, from the node
// where it happened. Two in-process gateways and a redis-server of the test's own.

describe.skipIf(!redisServerAvailable)('cluster events and webhooks', () => {
  let redis: RedisServer;
  let one: TestGateway;
  let two: TestGateway;
  let hooks: http.Server;
  let pub: Publisher;
  const delivered: GatewayEvent[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    hooks = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        delivered.push(JSON.parse(body) as GatewayEvent);
        res.end();
      });
    });
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
    const webhooks = { urls: [`http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`] };
    const node = async () => {
      const port = await freePort();
      return startTestGateway({ http: { port }, media: { workers: 1 }, webhooks, cluster: { redis: redis.url, nodeUrl: `http://127.0.0.1:${port}` } });
    };
    [one, two] = await Promise.all([node(), node()]);
  });

  afterAll(async () => {
    await pub?.stop().catch(() => undefined);
    await Promise.all([one?.close(), two?.close()]);
    await redis?.close();
    hooks?.close();
  });

  it("a stream's events reach the other node's feed with their node, and the webhooks once", async () => {
    pub = await startWeriftPublisher({ whipUrl: `${one.url}/whip/ev1`, width: 160, height: 120, gop: 30 });
    expect(pub.status, pub.errorText).toBe(201);
    await pub.connected();
    const node = new URL(one.url).host;
    const relayed = await waitFor('stream.started relayed to node two', () => two.gw.events.since(0).find((e) => e.type === 'stream.started' && e.stream === 'ev1'), 10_000);
    expect(relayed.node).toBe(node);
    expect(two.gw.events.isLocal(relayed)).toBe(false);
    await pub.stop();
    await waitFor('stream.stopped on node two', () => two.gw.events.since(0).find((e) => e.type === 'stream.stopped' && e.stream === 'ev1'), 15_000);
    await waitFor('webhooks delivered', () => (delivered.some((e) => e.type === 'stream.stopped') ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 500)); // a second copy would have come by now
    const mine = delivered.filter((e) => e.stream === 'ev1');
    expect(mine.filter((e) => e.type === 'stream.started')).toHaveLength(1);
    expect(mine.filter((e) => e.type === 'stream.stopped')).toHaveLength(1);
    expect(mine.every((e) => e.node === node)).toBe(true);
  });
});
