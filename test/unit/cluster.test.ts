import { describe, expect, it } from 'vitest';
import { Tickets } from '../../src/auth/tickets.js';
import { chooseNode, hasRoom } from '../../src/cluster/choose-node.js';
import { LocalDirectory } from '../../src/cluster/directory.js';
import { playlistCaching, segmentCaching } from '../../src/http/hls.js';

// The pure parts of the cluster: where a publisher goes, a gateway alone, and what an HTTP
// cache in front is allowed to keep (and that tickets do not split it per viewer).

const node = (id: string, sessions: number, maxSessions: number, cpuPercent = 0, maxCpuPercent = 0) => ({ id, sessions, maxSessions, cpuPercent, maxCpuPercent });

describe('choosing a node', () => {
  it('takes the least-loaded node with room, and none when all are full', () => {
    expect(chooseNode([node('a', 2, 2), node('b', 3, 4), node('c', 1, 4)])?.id).toBe('c');
    expect(chooseNode([node('a', 2, 2), node('b', 4, 4)])).toBeUndefined();
    expect(chooseNode([])).toBeUndefined();
  });

  it('counts CPU too: a node over its ceiling has no room, and a busier CPU loses a tie', () => {
    expect(hasRoom(node('a', 0, 0, 91, 90))).toBe(false);
    expect(hasRoom(node('a', 0, 0, 89, 90))).toBe(true);
    expect(chooseNode([node('a', 1, 10, 60), node('b', 1, 10, 20)])?.id).toBe('b');
    expect(hasRoom(node('a', 1000, 0))).toBe(true); // 0: no cap
  });
});

describe('a gateway alone (LocalDirectory)', () => {
  const self = { version: '0', startedAt: new Date().toISOString() };

  it('owns every name and is full at cluster.maxSessions, except for a name it already has', async () => {
    const dir = new LocalDirectory({ maxSessions: 2, maxCpuPercent: 0 }, self, 1000);
    dir.url = 'http://127.0.0.1:8080';
    let sessions = 1;
    dir.attach({ sessions: () => sessions, has: (n) => n === 'mine', streams: () => [] });
    expect(await dir.place('x')).toEqual({ kind: 'here' });
    sessions = 2;
    expect(await dir.place('x')).toMatchObject({ kind: 'full', reason: expect.stringMatching(/2 publishers \(cluster.maxSessions 2\)/) });
    expect(await dir.place('mine')).toEqual({ kind: 'here' }); // a replacement or a 409 is the registry's to say
    await expect(dir.claim('x')).resolves.toBeUndefined();
    expect(await dir.ownerOf('x')).toBeUndefined();
    expect((await dir.nodes()).map((n) => [n.id, n.state, n.self])).toEqual([['127.0.0.1:8080', 'up', true]]);
    await dir.close();
  });
});

describe('HLS behind an HTTP cache', () => {
  it('playlists: players keep none, a shared cache half a segment (at least 1 s)', () => {
    expect(playlistCaching({ segmentSeconds: 1, listSize: 6 })).toBe('public, max-age=0, s-maxage=1');
    expect(playlistCaching({ segmentSeconds: 4, listSize: 6 })).toBe('public, max-age=0, s-maxage=2');
  });

  it('segments: twice the playlist, never past their ticket', () => {
    const now = 1_700_000_000_000;
    expect(segmentCaching({ segmentSeconds: 1, listSize: 6 })).toBe('public, max-age=12');
    expect(segmentCaching({ segmentSeconds: 1, listSize: 6 }, now + 5500, now)).toBe('public, max-age=5');
    expect(segmentCaching({ segmentSeconds: 1, listSize: 6 }, now - 1, now)).toBe('public, max-age=0');
  });

  it('every viewer gets the same ticket within a quarter of its lifetime, valid for at least three quarters of it', () => {
    const tickets = new Tickets(600_000);
    const t0 = 1_700_000_100_000; // a step starts here (a multiple of 150 s)
    const first = tickets.issueShared('cam1', t0);
    expect(tickets.issueShared('cam1', t0 + 149_999)).toBe(first);
    expect(tickets.issueShared('cam1', t0 + 150_000)).not.toBe(first);
    expect(tickets.expiryOf('cam1', first)).toBe(t0 + 600_000);
    expect(tickets.valid('cam1', first, t0 + 149_999 + 450_000)).toBe(true);
  });

  it('a ticket from one node opens segments on another that has the cluster key', () => {
    const key = Buffer.alloc(32, 7);
    const ticket = new Tickets(600_000, key).issueShared('cam1');
    expect(new Tickets(600_000, key).valid('cam1', ticket)).toBe(true);
    expect(new Tickets(600_000).valid('cam1', ticket)).toBe(false);
  });
});
