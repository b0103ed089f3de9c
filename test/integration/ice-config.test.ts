import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// A fixed ICE port range (what a firewall or container opens) is respected, also when
// several publishers arrive at the same moment (werift can race on a fixed range).

describe('ICE port range', () => {
  let t: TestGateway;
  const pubs: Publisher[] = [];
  const range: [number, number] = [41000 + (process.pid % 50) * 40, 41000 + (process.pid % 50) * 40 + 39];

  beforeAll(async () => {
    t = await startTestGateway({ ice: { portRange: range } });
  });
  afterAll(async () => {
    await Promise.all(pubs.map((p) => p.stop()));
    await t?.close();
  });

  it('answers only with candidates in the range, for publishers starting together', async () => {
    pubs.push(...(await Promise.all(Array.from({ length: 6 }, (_, i) => startWeriftPublisher({ whipUrl: `${t.url}/whip/range${i}`, width: 160, height: 90, gop: 30, audio: false })))));
    const ports = new Set<number>();
    for (const p of pubs) {
      expect(p.status).toBe(201);
      const candidates = p.answer.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
      expect(candidates.length).toBeGreaterThan(0);
      for (const c of candidates) {
        const port = Number(c.split(' ')[5]);
        expect(port).toBeGreaterThanOrEqual(range[0]);
        expect(port).toBeLessThanOrEqual(range[1]);
        ports.add(port);
      }
    }
    expect(ports.size).toBe(6); // one port each: no two peers got the same one
    for (const p of pubs) await p.connected();
    await waitFor('all live', async () => {
      const list = (await (await fetch(`${t.url}/api/streams`)).json()) as { state: string; ice?: { local: { port: number } } }[];
      return list.length === 6 && list.every((s) => s.state === 'live' && s.ice && s.ice.local.port >= range[0] && s.ice.local.port <= range[1]) ? true : undefined;
    });
  });
});
