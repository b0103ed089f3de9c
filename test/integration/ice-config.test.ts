import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeUdpRange } from '../helpers/free-port.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// A fixed ICE port range (what a firewall or container opens) is respected, also when
// several publishers arrive at the same moment (werift can race on a fixed range), and an
// offer takes one port however many sections it has (one 25-section offer once took a
// whole 20-port range for 15 s).

describe('ICE port range', () => {
  let t: TestGateway;
  const pubs: Publisher[] = [];
  let range: [number, number];

  beforeAll(async () => {
    range = await freeUdpRange(40);
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

  it('an offer with 8 sections takes one port: three that never connect leave room in a 4-port range', async () => {
    const small: [number, number] = [range[1] + 1, range[1] + 4];
    const g = await startTestGateway({ ice: { portRange: small } });
    const real: Publisher[] = [];
    try {
      // A real offer (a publisher that will never get its answer), grown to 8 bundled sections.
      const template = await startWeriftPublisher({ whipUrl: `${g.url}/whip/template`, width: 160, height: 90, audio: false });
      const offer = template.pc.localDescription!.sdp;
      await template.stop();
      const same = ['ice-ufrag', 'ice-pwd', 'fingerprint', 'setup'].map((k) => new RegExp(`^a=${k}:[^\\r]*`, 'm').exec(offer)![0]);
      const extra = Array.from({ length: 7 }, (_, i) => ['m=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', `a=mid:x${i}`, ...same, 'a=sendonly', 'a=rtcp-mux', 'a=rtpmap:111 opus/48000/2'].join('\r\n')).join('\r\n');
      const eight = offer.replace(/^(a=group:BUNDLE [^\r]*)/m, (g0) => `${g0} ${Array.from({ length: 7 }, (_, i) => `x${i}`).join(' ')}`).replace(/\r\n$/, `\r\n${extra}\r\n`);
      expect(eight.match(/^m=/gm)).toHaveLength(8);
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${g.url}/whip/stray${i}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: eight });
        const answer = await res.text();
        expect(res.status, answer).toBe(201);
        expect(new Set(answer.split('\r\n').filter((l) => l.startsWith('a=candidate:')).map((l) => l.split(' ')[5])).size).toBe(1);
      }
      real.push(await startWeriftPublisher({ whipUrl: `${g.url}/whip/real`, width: 160, height: 90, gop: 30, audio: false }));
      expect(real[0].status, real[0].errorText).toBe(201);
      await real[0].connected();
    } finally {
      for (const p of real) await p.stop();
      await g.close();
    }
  });
});
