import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffprobe } from '../helpers/ffprobe.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { getStream, waitLive, waitPlaylist, type StreamInfoJson } from '../helpers/e2e-api.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// The media plane on worker threads, with real werift publishers and real ffmpeg: new
// sessions spread over the workers, a stream on each reaches HLS, and a worker that dies
// takes only its own sessions: the other worker's stream goes on, the dead one is started
// again and takes new publishers.

type Info = StreamInfoJson & { worker: number };

const mediaSequence = (playlist: string) => Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(playlist)?.[1] ?? -1);

describe('media workers', () => {
  let t: TestGateway;
  const pubs: Publisher[] = [];

  beforeAll(async () => {
    t = await startTestGateway({ media: { workers: 2 } });
  });

  afterAll(async () => {
    for (const p of pubs) await p.stop().catch(() => undefined);
    await t?.close();
  });

  async function publish(name: string): Promise<Info> {
    const pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/${name}`, width: 320, height: 240, gop: 30 });
    pubs.push(pub);
    expect(pub.status, pub.errorText).toBe(201);
    await pub.connected();
    return (await waitLive(t.url, name)) as Info;
  }

  it('places sessions on the least-loaded worker and reaches HLS on each', async () => {
    const [a, b] = await Promise.all([publish('wk-a'), publish('wk-b')]);
    expect([a.worker, b.worker].sort()).toEqual([0, 1]);
    for (const name of ['wk-a', 'wk-b']) {
      const playlist = `${t.url}/hls/${name}/index.m3u8`;
      await waitPlaylist(t.url, name, 2);
      const probe = await ffprobe(playlist);
      expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 320, height: 240 });
    }
  });

  it('contains a worker crash: its stream ends with the reason, the other goes on, the worker comes back', async () => {
    const streams = (await (await fetch(`${t.url}/api/streams`)).json()) as Info[];
    const victim = streams.find((s) => s.worker === 0)!;
    const survivor = streams.find((s) => s.worker === 1)!;
    const before = mediaSequence(await waitPlaylist(t.url, survivor.name, 2));

    await t.gw.media.terminate(0);

    const stopped = await waitFor('stream.stopped for the crashed worker\'s stream', () =>
      t.gw.events.since(0).find((e) => e.type === 'stream.stopped' && e.stream === victim.name),
    );
    expect(stopped).toMatchObject({ reason: expect.stringMatching(/media worker 0 stopped/) });
    expect((await getStream(t.url, victim.name)).status).toBe(404);

    // The survivor's publisher is still connected and its playlist keeps advancing.
    await waitFor('the other worker\'s playlist advancing', async () => {
      const res = await fetch(`${t.url}/hls/${survivor.name}/index.m3u8`);
      return res.ok && mediaSequence(await res.text()) >= before + 2 ? true : undefined;
    }, 15_000, 250);
    expect((await getStream(t.url, survivor.name)).info).toMatchObject({ state: 'live', worker: 1 });

    // Worker 0 is started again and, with no session, takes the next publisher.
    await waitFor('worker 0 running again', () => t.gw.media.info().find((w) => w.index === 0 && w.restarts === 1 && w.running));
    const next = await publish('wk-c');
    expect(next.worker).toBe(0);
    await waitPlaylist(t.url, 'wk-c', 2);
  });
});
