import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { PortAllocator, PortRangeExhausted, udpPortFree, udpPortsBound } from '../../src/rtp/ports.js';

describe('port allocation', () => {
  it('hands out even RTP ports with the odd RTCP port free, round-robin', async () => {
    const a = new PortAllocator(21001, 21010, async () => true, 21002);
    const ports = [await a.allocate(), await a.allocate(), await a.allocate()];
    expect(ports).toEqual([21002, 21004, 21006]);
    a.release(21004);
    expect(await a.allocate()).toBe(21008); // a just-released port is not reused at once
    expect(a.used).toBe(3);
  });

  it('skips a port another program holds, and says when the range is used up', async () => {
    const busy = new Set([21102, 21105]);
    const a = new PortAllocator(21100, 21107, async (p) => !busy.has(p), 21100);
    expect(await a.allocate()).toBe(21100);
    expect(await a.allocate()).toBe(21106); // 21102 busy, 21104's RTCP 21105 busy
    await expect(a.allocate()).rejects.toBeInstanceOf(PortRangeExhausted);
  });

  it('starts its round at a random place in the range (two gateways on one machine)', () => {
    const starts = new Set(Array.from({ length: 20 }, () => new PortAllocator(20000, 29999)['cursor']));
    expect(starts.size).toBeGreaterThan(10);
    for (const s of starts) expect(s % 2 === 0 && s >= 20000 && s < 29999).toBe(true);
  });

  it('does not give one port to two concurrent callers', async () => {
    const a = new PortAllocator(21200, 21299, () => new Promise((r) => setTimeout(() => r(true), 5)));
    const got = await Promise.all(Array.from({ length: 20 }, () => a.allocate()));
    expect(new Set(got).size).toBe(20);
  });

  it('sees real sockets on loopback', async () => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const port = s.address().port;
    expect(await udpPortFree(port)).toBe(false);
    expect(await udpPortsBound([port])).toBe(true);
    s.close();
    await new Promise((r) => setTimeout(r, 20));
    expect(await udpPortFree(port)).toBe(true);
    expect(await udpPortsBound([port])).toBe(false);
  });

  it('rejects a range with no port pair', () => {
    expect(() => new PortAllocator(21300, 21300)).toThrow(/holds no/);
  });
});
