import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audioOffset, readSyncMarks } from '../helpers/av-sync.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Sound and picture stay together through the shared AAC encode: HLS (which copies the
// stream's AAC, encoded ~55 ms after the Opus arrives) is held against a recording that
// keeps the publisher's Opus, both from one publisher whose picture flashes white and
// beeps at the start of every second. Both are started mid-stream, from the cached
// keyframe, where the AAC's delay matters: the AAC encoder starts with them and is fed the
// sound cached since that keyframe (media/feed.ts), so its first packets come in a burst.

/** HLS's sound-to-picture offset (6 segments' sync marks) within 35 ms of the recording's. */
async function expectInSync(playlist: string, recordingFile: string): Promise<void> {
  const hls = audioOffset(await readSyncMarks(playlist, 6));
  const recording = audioOffset(await readSyncMarks(recordingFile, 6));
  expect(hls.pairs).toBeGreaterThanOrEqual(3);
  expect(recording.pairs).toBeGreaterThanOrEqual(3);
  expect(Math.abs(hls.offset - recording.offset), `HLS ${hls.offset}, recording ${recording.offset}`).toBeLessThan(0.035);
}

describe('lip sync through the shared AAC encode', () => {
  let t: TestGateway;
  let pub: Publisher;

  beforeAll(async () => {
    t = await startTestGateway({ hls: { auto: false } });
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/sync1`, width: 320, height: 180, gop: 30, syncMarks: true });
    await pub.connected();
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('HLS with AAC is within 35 ms of the Opus recording', async () => {
    await waitFor('live', async () => ((await (await fetch(`${t.url}/api/streams/sync1`)).json()) as { state: string }).state === 'live' || undefined);
    await new Promise((r) => setTimeout(r, 2500)); // mid-stream: a keyframe cached, AAC flowing for a while
    const post = (body: object) => fetch(`${t.url}/api/streams/sync1/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const [res, hlsRes] = await Promise.all([post({ type: 'record', format: 'mkv' }), post({ type: 'hls' })]);
    expect(res.status).toBe(201);
    expect(hlsRes.status).toBe(201);
    const { id, urls } = (await res.json()) as { id: string; urls: { file: string } };
    const playlist = `${t.url}/hls/sync1/index.m3u8`;
    await waitFor('6 HLS segments', async () => {
      const r = await fetch(playlist);
      return r.ok && ((await r.text()).match(/\.ts/g) ?? []).length >= 6 ? true : undefined;
    }, 30_000);
    expect((await fetch(`${t.url}/api/streams/sync1/outputs/${id}`, { method: 'DELETE' })).status).toBe(204);
    await expectInSync(playlist, path.join(t.dataDir, 'recordings', 'sync1', path.basename(urls.file)));
  });
});

// At the very start of a stream: HLS and a recording start with the answer, and the shared
// AAC encoder, when its ffmpeg listens only after the publisher's first keyframe, is primed
// with the sound cached since that keyframe (media/feed.ts), so HLS starts at it too.
describe('lip sync from the first keyframe of a stream', () => {
  let t: TestGateway;
  let pub: Publisher;

  beforeAll(async () => {
    t = await startTestGateway({ outputs: [{ streams: 'sync2', type: 'record', params: { format: 'mkv' } }] });
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/sync2`, width: 320, height: 180, gop: 30, syncMarks: true });
    await pub.connected();
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('HLS started with the stream is within 35 ms of the Opus recording started with it', async () => {
    const playlist = `${t.url}/hls/sync2/index.m3u8`;
    await waitFor('6 HLS segments', async () => {
      const r = await fetch(playlist);
      return r.ok && ((await r.text()).match(/\.ts/g) ?? []).length >= 6 ? true : undefined;
    }, 30_000);
    const outputs = (await (await fetch(`${t.url}/api/streams/sync2/outputs`)).json()) as { id: string; type: string; urls: { file?: string } }[];
    const record = outputs.find((o) => o.type === 'record');
    expect(record?.urls.file).toBeDefined();
    expect((await fetch(`${t.url}/api/streams/sync2/outputs/${record!.id}`, { method: 'DELETE' })).status).toBe(204);
    await expectInSync(playlist, path.join(t.dataDir, 'recordings', 'sync2', path.basename(record!.urls.file!)));
  });
});
