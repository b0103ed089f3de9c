import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastSequence, segmentsOf } from '../helpers/hls-media.js';
import type { GatewayEvent } from '../../src/events/bus.js';
import { parseIceFragment } from '../../src/sdp/ice-fragment.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { longestGap, watchHls, type HlsViewer } from '../helpers/hls-viewer.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// WHIP PATCH (RFC 9725 §4.3) with real werift publishers: candidates trickled after the
// 201, an ICE restart after a network change (new socket, new port) that keeps the
// session, its outputs and the HLS playlist going, and the entity-tag rules.

interface StreamJson {
  state: string;
  session: string;
  iceRestarts: number;
  tracks: { kind: string; packets: number }[];
  ice?: { local: { address: string; port: number; type: string }; remote: { address: string; port: number; type: string } };
}

let t: TestGateway;
const events: GatewayEvent[] = [];
const pubs: Publisher[] = [];

beforeAll(async () => {
  t = await startTestGateway();
  t.gw.events.on('event', (e) => events.push(e));
});

afterAll(async () => {
  await Promise.all(pubs.map((p) => p.stop()));
  await t?.close();
});

const stream = async (name: string): Promise<StreamJson | undefined> => {
  const res = await fetch(`${t.url}/api/streams/${name}`);
  return res.ok ? ((await res.json()) as StreamJson) : undefined;
};
const videoPackets = async (name: string) => (await stream(name))?.tracks.find((x) => x.kind === 'video')?.packets ?? 0;
const playlist = async (name: string) => (await fetch(`${t.url}/hls/${name}/index.m3u8`)).text();
const sequenceOf = (text: string) => Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? NaN);
const lastSegment = lastSequence;

describe('trickle ICE over PATCH', () => {
  it('a publisher whose offer has no candidates trickles them after the 201 (204) and connects through them', async () => {
    // It takes no candidate from the answer: it is reached only by the gateway's checks to
    // the candidates it trickled, so without a working PATCH it would not connect.
    const pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/trickle1`, width: 320, height: 180, gop: 30, trickle: 'patch', ignoreAnswerCandidates: true });
    pubs.push(pub);
    expect(pub.status, pub.errorText).toBe(201);
    expect(pub.offer).not.toMatch(/^a=candidate:/m);
    expect(await pub.tricklePatch()).toBe(204);
    await pub.connected();
    const live = await waitFor('live with media', async () => {
      const s = await stream('trickle1');
      return s?.state === 'live' && s.ice && (s.tracks.find((x) => x.kind === 'video')?.packets ?? 0) > 30 ? s : undefined;
    });
    const trickled = /^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host/m.exec(pub.pc.localDescription!.sdp)?.[1];
    expect(live.ice?.remote).toMatchObject({ address: '127.0.0.1', type: 'host', port: Number(trickled) });
  });
});

describe('ICE restart over PATCH', () => {
  const name = 'restart1';
  let pub: Publisher;
  let viewer: HlsViewer;
  let firstEtag: string | undefined;
  let firstUfrag: string | undefined;
  let restartEtag: string | undefined;

  beforeAll(async () => {
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/${name}`, width: 640, height: 360, gop: 30 });
    pubs.push(pub);
    await pub.connected();
    firstEtag = pub.etag();
    firstUfrag = /^a=ice-ufrag:(\S+)/m.exec(pub.pc.localDescription!.sdp)?.[1];
    await waitFor('HLS segments', async () => (segmentsOf(await playlist(name)).length >= 3 ? true : undefined), 20_000, 200);
    viewer = watchHls(t.url, name, 200);
  });

  afterAll(async () => {
    await viewer?.stop();
  });

  it('moves to a new socket: 200 with new credentials and candidates, a new ETag; the same session, no stream.stopped', async () => {
    const before = (await stream(name))!;
    const ports = { before: before.ice!.remote.port };
    const seqBefore = sequenceOf(await playlist(name));
    const r = await pub.restartIce({ newSocket: true, lostForMs: 1000 });
    expect(r.status, r.answer).toBe(200);
    console.log(`[restart] PATCH body:\n${r.fragment}\n[restart] 200 body:\n${r.answer}`);
    const frag = parseIceFragment(r.answer);
    expect(frag.ufrag).toBeDefined();
    expect(pub.answer).not.toContain(`a=ice-ufrag:${frag.ufrag}`);
    expect(frag.candidates.map((c) => c.candidate)).toEqual([expect.stringMatching(/ 127\.0\.0\.1 \d+ typ host/)]);
    expect(frag.endOfCandidates).toBe(true);
    expect(r.etag).toBeDefined();
    expect(r.etag).not.toBe(firstEtag);
    restartEtag = r.etag;
    // Media again, from the new port, in the same session.
    const packets = await videoPackets(name);
    const after = await waitFor('media over the new pair', async () => {
      const s = await stream(name);
      return s && s.ice && s.ice.remote.port !== ports.before && (s.tracks.find((x) => x.kind === 'video')?.packets ?? 0) > packets + 60 ? s : undefined;
    }, 10_000, 50);
    const resumedAt = performance.now();
    console.log(`[restart] media again ${Math.round(resumedAt - r.lostAt)} ms after the old socket closed (PATCH answered ${Math.round(r.appliedAt - r.patchedAt)} ms after it was sent); remote port ${ports.before} -> ${after.ice!.remote.port}`);
    expect(after).toMatchObject({ state: 'live', session: before.session, iceRestarts: 1 });
    expect(events.filter((e) => e.stream === name && e.type === 'stream.stopped')).toEqual([]);
    // The playlist goes on: same media sequence run, new segments, no end.
    const seqNow = sequenceOf(await playlist(name));
    expect(seqNow).toBeGreaterThanOrEqual(seqBefore);
    const last = lastSegment(await playlist(name));
    await waitFor('two more segments after the restart', async () => (lastSegment(await playlist(name)) >= last + 2 ? true : undefined), 15_000, 200);
    const text = await playlist(name);
    expect(text).not.toContain('#EXT-X-ENDLIST');
    expect(sequenceOf(text)).toBeGreaterThanOrEqual(seqNow);
  }, 40_000);

  it('a viewer sees a gap of seconds, not an end', async () => {
    await new Promise((r) => setTimeout(r, 1500));
    await viewer.stop();
    const times = await viewer.videoFrameTimes();
    const gap = longestGap(times);
    console.log(`[restart] HLS viewer: ${viewer.segments()} segments, ${times.length} frames, longest gap between frames ${gap.toFixed(2)} s`);
    expect(times.length).toBeGreaterThan(100);
    expect(gap).toBeLessThan(5);
  }, 30_000);

  describe('entity tags and refusals (the live stream untouched)', () => {
    const url = () => new URL(pub.location!, t.url);
    const patch = (body: string, headers: Record<string, string> = {}) => fetch(url(), { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', ...headers }, body });
    const candidate = 'a=candidate:9 1 udp 2130706431 127.0.0.1 9 typ host';
    const ufragNow = () => /^a=ice-ufrag:(\S+)/m.exec(pub.pc.localDescription!.sdp)?.[1];

    it('412 for the ETag of the ICE session before the restart, with the current ETag', async () => {
      const res = await patch(`m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n${candidate}\r\n`, { 'If-Match': firstEtag! });
      expect(res.status, await res.text()).toBe(412);
      expect(res.headers.get('etag')).toBe(restartEtag);
    });

    it('412 for the ice-ufrag of the ICE session before the restart', async () => {
      const res = await patch(`a=ice-ufrag:${firstUfrag}\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n${candidate}\r\n`, { 'If-Match': '*' });
      const text = await res.text();
      expect(res.status, text).toBe(412);
      expect(text).toMatch(/restarted since/);
    });

    it('428 without If-Match and without an ice-ufrag; 204 with either', async () => {
      expect((await patch(`${candidate}\r\n`)).status).toBe(428);
      expect((await patch(`${candidate}\r\n`, { 'If-Match': restartEtag! })).status).toBe(204);
      expect((await patch(`a=ice-ufrag:${ufragNow()}\r\na=ice-pwd:${/^a=ice-pwd:(\S+)/m.exec(pub.pc.localDescription!.sdp)?.[1]}\r\n${candidate}\r\n`)).status).toBe(204);
    });

    it('415 for another content type (with Accept-Patch), 400 naming a bad fragment, 422 for an unknown mid, 404 for an unknown session', async () => {
      const wrong = await patch(candidate, { 'Content-Type': 'application/sdp', 'If-Match': restartEtag! });
      expect(wrong.status).toBe(415);
      expect(wrong.headers.get('accept-patch')).toBe('application/trickle-ice-sdpfrag');
      const bad = await patch('hello\r\n', { 'If-Match': restartEtag! });
      expect(bad.status).toBe(400);
      expect(await bad.text()).toMatch(/not an application\/trickle-ice-sdpfrag/);
      const broken = await patch('a=candidate:1 1 udp\r\n', { 'If-Match': restartEtag! });
      expect(broken.status).toBe(400);
      expect(await broken.text()).toMatch(/not an ICE candidate/);
      const mid = await patch(`m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:7\r\n${candidate}\r\n`, { 'If-Match': restartEtag! });
      expect(mid.status).toBe(422);
      expect(await mid.text()).toMatch(/a=mid:7/);
      const unknown = await fetch(`${t.url}/whip/${name}/00000000-0000-4000-8000-000000000000`, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag' }, body: candidate });
      expect(unknown.status).toBe(404);
      const packets = await videoPackets(name);
      await waitFor('media still flowing', async () => ((await videoPackets(name)) > packets + 30 ? true : undefined));
      expect(await stream(name)).toMatchObject({ state: 'live', iceRestarts: 1 });
    });

    it('OPTIONS on the session names what PATCH takes', async () => {
      const res = await fetch(url(), { method: 'OPTIONS' });
      expect(res.headers.get('accept-patch')).toBe('application/trickle-ice-sdpfrag');
    });
  });
});
