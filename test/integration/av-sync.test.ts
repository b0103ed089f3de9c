import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentsOf } from '../helpers/hls-media.js';
import { audioOffset, readSyncMarks } from '../helpers/av-sync.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Sound and picture stay together through the gateway: one publisher whose picture flashes
// white and beeps at the start of every second (one ffmpeg draws both from one clock, so
// in what it sends they start together, give or take its Opus encoder's lookahead, below).
// Two things are held:
// - the recording, which keeps the publisher's Opus, against what the publisher sent:
//   flash and beep within half a frame of where the publisher put them;
// - HLS (which copies the stream's AAC, encoded ~55 ms after the Opus arrives) against
//   that recording.
// Both are started mid-stream, from the cached keyframe, where the AAC's delay matters:
// the AAC encoder starts with them and is fed the sound cached since that keyframe
// (media/feed.ts), so its first packets come in a burst.

/**
 * Where the publisher itself puts its beeps after its flashes, as any RTP receiver decodes
 * them: libopus's lookahead, 312 samples at 48 kHz (RTP carries no pre-skip to remove it).
 * Measured without the gateway (the publisher's ffmpeg sending to an ffmpeg that records
 * its RTP into MKV, read as below): +8.5 ms; through the gateway: +6.5 ms.
 */
const PUBLISHER_OFFSET = 312 / 48_000;
/** Half a frame at 30 fps: a gateway that moved the sound by a frame against the picture fails. */
const RECORDING_TOLERANCE = 1 / 60;

/**
 * The recording's sound-to-picture offset (6 s of sync marks) within half a frame of the
 * publisher's own, and HLS's within 35 ms of the recording's.
 */
async function expectInSync(playlist: string, recordingFile: string): Promise<void> {
  const hls = audioOffset(await readSyncMarks(playlist, 6));
  const recording = audioOffset(await readSyncMarks(recordingFile, 6));
  const figures = `HLS ${hls.offset} s (${hls.pairs} pairs), recording ${recording.offset} s (${recording.pairs} pairs), publisher ${PUBLISHER_OFFSET} s`;
  expect(hls.pairs, figures).toBeGreaterThanOrEqual(3);
  expect(recording.pairs, figures).toBeGreaterThanOrEqual(3);
  expect(Math.abs(recording.offset - PUBLISHER_OFFSET), figures).toBeLessThan(RECORDING_TOLERANCE);
  expect(Math.abs(hls.offset - recording.offset), figures).toBeLessThan(0.035);
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

  it('the Opus recording is within half a frame of the publisher, HLS with AAC within 35 ms of the recording', async () => {
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
      return r.ok && segmentsOf(await r.text()).length >= 6 ? true : undefined;
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

  it('a recording started with the stream is within half a frame of the publisher, HLS started with it within 35 ms of the recording', async () => {
    const playlist = `${t.url}/hls/sync2/index.m3u8`;
    await waitFor('6 HLS segments', async () => {
      const r = await fetch(playlist);
      return r.ok && segmentsOf(await r.text()).length >= 6 ? true : undefined;
    }, 30_000);
    const outputs = (await (await fetch(`${t.url}/api/streams/sync2/outputs`)).json()) as { id: string; type: string; urls: { file?: string } }[];
    const record = outputs.find((o) => o.type === 'record');
    expect(record?.urls.file).toBeDefined();
    expect((await fetch(`${t.url}/api/streams/sync2/outputs/${record!.id}`, { method: 'DELETE' })).status).toBe(204);
    await expectInSync(playlist, path.join(t.dataDir, 'recordings', 'sync2', path.basename(record!.urls.file!)));
  });
});
