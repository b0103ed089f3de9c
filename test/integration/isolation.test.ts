import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastSequence, segmentsOf } from '../helpers/hls-media.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { hlsPlayer } from '../helpers/players.js';
import { socketsOf } from '../helpers/sockets.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// One stream's failure never disturbs another: an HLS ffmpeg killed with SIGKILL comes
// back on its own, its playlist goes on where it was (a player keeps playing), while the
// other stream's ffmpeg keeps running untouched. Every ffmpeg listens on loopback only.

async function segments(url: string): Promise<number> {
  const res = await fetch(url);
  if (!res.ok) return 0;
  const m = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(await res.text());
  return m ? Number(m[1]) : 0;
}

async function playlistState(url: string): Promise<{ text: string; mediaSequence: number; lastSegment: number }> {
  const text = await (await fetch(url)).text();
  return { text, mediaSequence: Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? -1), lastSegment: lastSequence(text) };
}

describe('isolation and restart', () => {
  let t: TestGateway;
  let a: Publisher;
  let b: Publisher;

  beforeAll(async () => {
    t = await startTestGateway({ hls: { listSize: 4 } });
    [a, b] = await Promise.all([
      startWeriftPublisher({ whipUrl: `${t.url}/whip/iso-a`, width: 320, height: 180, gop: 30 }),
      startWeriftPublisher({ whipUrl: `${t.url}/whip/iso-b`, width: 320, height: 180, gop: 30, audio: false }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await t?.close();
  });

  it('restarts a killed ffmpeg and leaves the other stream alone', async () => {
    expect([a.status, b.status]).toEqual([201, 201]);
    const outputOf = (name: string) => t.gw.registry.get(name)?.outputs.get('hls');
    const pidA = await waitFor('ffmpeg of a', () => (outputOf('iso-a')?.state === 'running' ? outputOf('iso-a')?.pid : undefined));
    const pidB = await waitFor('ffmpeg of b', () => (outputOf('iso-b')?.state === 'running' ? outputOf('iso-b')?.pid : undefined));
    // A player on a's playlist, from before the kill to after the restart.
    const playlistA = `${t.url}/hls/iso-a/index.m3u8`;
    await waitFor('a playlist with 3 segments', async () => segmentsOf(await (await fetch(playlistA)).text()).length >= 3 || undefined, 15_000);
    const player = hlsPlayer(playlistA);
    try {
      await waitFor('player decoding', () => player.frames() > 30 || undefined, 15_000);
      const before = await playlistState(playlistA);
      process.kill(pidA, 'SIGKILL');
      await waitFor('a restarting', () => outputOf('iso-a')?.state === 'restarting' || undefined, 5000, 20);
      await waitFor('a running again', () => outputOf('iso-a')?.state === 'running' || undefined);
      // The playlist goes on: same media sequence numbering, new segment names, a discontinuity.
      const after = await waitFor('a playlist moving on after the restart', async () => {
        const s = await playlistState(playlistA);
        return s.lastSegment > before.lastSegment + 1 && s.text.includes('#EXT-X-DISCONTINUITY') ? s : undefined;
      }, 15_000);
      expect(after.mediaSequence).toBeGreaterThanOrEqual(before.mediaSequence);
      // The player keeps getting pictures after the restart (it used to stall for 30 s
      // on "Media sequence changed unexpectedly").
      const framesAtRestart = player.frames();
      await waitFor('player decoding after the restart', () => player.frames() > framesAtRestart + 60 || undefined, 20_000);
      expect(player.complaints().filter((l) => /Media sequence changed/.test(l))).toEqual([]);
    } finally {
      await player.stop();
    }
    const newPid = await waitFor('a running again', () => {
      const o = outputOf('iso-a');
      return o?.state === 'running' && o.pid !== pidA ? o.pid : undefined;
    });
    expect(newPid).not.toBe(pidA);
    const info = (await (await fetch(`${t.url}/api/streams/iso-a`)).json()) as { outputs: { restarts: number; state: string }[] };
    expect(info.outputs[0]).toMatchObject({ state: 'running', restarts: 1 });
    // a's playlist moves on again after the restart
    await waitFor('a segments after restart', async () => (segmentsOf(await (await fetch(`${t.url}/hls/iso-a/index.m3u8`)).text()).length > 0 ? true : undefined), 15_000);
    // b was never touched: same process, playlist still advancing
    expect(outputOf('iso-b')?.pid).toBe(pidB);
    expect(outputOf('iso-b')?.info().restarts).toBe(0);
    const before = await segments(`${t.url}/hls/iso-b/index.m3u8`);
    await waitFor('b advancing', async () => ((await segments(`${t.url}/hls/iso-b/index.m3u8`)) > before ? true : undefined), 10_000);
  });

  it('every ffmpeg input listens on 127.0.0.1 only', async () => {
    // Both HLS outputs (one was just restarted) and the AAC encoder of iso-a (iso-b has no audio).
    const pids = await waitFor('three ffmpegs', () => (t.gw.registry.ffmpegPids().length === 3 ? t.gw.registry.ffmpegPids() : undefined), 10_000);
    for (const pid of pids) {
      const sockets = await socketsOf(pid);
      expect(sockets.filter((s) => s.protocol === 'udp').length, `ffmpeg ${pid}`).toBeGreaterThanOrEqual(2); // RTP + RTCP per track
      expect(sockets.filter((s) => s.address !== '127.0.0.1'), `ffmpeg ${pid}: ${JSON.stringify(sockets)}`).toEqual([]);
    }
  });

  it('serves a second stream while one is refused', async () => {
    const res = await fetch(`${t.url}/whip/iso-a`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: 'v=0\r\nnonsense' });
    expect(res.status).toBe(400);
    expect((await fetch(`${t.url}/api/streams/iso-b`)).status).toBe(200);
    expect(t.gw.registry.get('iso-a')?.state).toBe('live');
  });
});
