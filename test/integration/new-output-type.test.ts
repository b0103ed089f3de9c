import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffprobe } from '../helpers/ffprobe.js';
import { freePort } from '../helpers/free-port.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { ffmpegReceiver, playerDir } from '../helpers/players.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// A new output type that is "MPEG-TS pushed over X" is one JSON file and nothing else:
// here MPEG-TS over TCP, from a folder of the user's own pipelines (pipelines.extraDir).
// It is started over REST like any built-in type, its target is checked like theirs,
// the OpenAPI document lists it, and a real ffmpeg on the other end receives H.264 + AAC.

const TCP_MPEGTS = {
  type: 'tcp-mpegts',
  description: 'Push MPEG-TS over TCP to a listener (tcp://host:port).',
  delivery: 'push',
  params: { url: { type: 'url', protocols: ['tcp'], description: 'tcp:// URL of the listener' } },
  video: ['-map', '0:v:0', '-c:v', 'copy'],
  audio: ['-map', '0:a:0', '-c:a', 'aac', '-b:a', '{{audioBitrate}}', '-ac', '{{audioChannels}}', '-ar', '48000'],
  output: ['-f', 'mpegts'],
  target: '{{url}}',
};

describe('a new output type from one JSON file', () => {
  let extra: string;
  let t: TestGateway;
  let pub: Publisher;

  beforeAll(async () => {
    extra = await mkdtemp(path.join(os.tmpdir(), 'gw-pipelines-'));
    await writeFile(path.join(extra, 'tcp-mpegts.json'), JSON.stringify(TCP_MPEGTS, null, 2));
    t = await startTestGateway({ pipelines: { extraDir: extra } });
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/tcp1`, width: 320, height: 240, gop: 30 });
    await pub.connected();
    await waitFor('live', () => t.gw.registry.get('tcp1')?.state === 'live');
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
    await rm(extra, { recursive: true, force: true });
  });

  it('is listed, refuses what is not its scheme or listens, and pushes H.264 + AAC to a TCP listener', async () => {
    const doc = (await (await fetch(`${t.url}/api/openapi.json`)).json()) as { components: { schemas: { OutputRequest: unknown } } };
    expect(JSON.stringify(doc.components.schemas.OutputRequest)).toContain('tcp-mpegts');
    const post = (body: object) => fetch(`${t.url}/api/streams/tcp1/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const wrong = await post({ type: 'tcp-mpegts', url: 'udp://127.0.0.1:5000' });
    expect([wrong.status, ((await wrong.json()) as { message: string }).message]).toEqual([400, 'url: must be a tcp:// URL']);
    const listens = await post({ type: 'tcp-mpegts', url: 'tcp://127.0.0.1:5000?listen=1' });
    expect(((await listens.json()) as { message: string }).message).toMatch(/must push to a listener, not listen itself/);

    const port = await freePort();
    const out = path.join(await playerDir(), 'tcp.ts');
    const rx = ffmpegReceiver(`tcp://127.0.0.1:${port}?listen=1`, out, 3);
    await new Promise((r) => setTimeout(r, 500));
    const res = await post({ type: 'tcp-mpegts', url: `tcp://127.0.0.1:${port}` });
    expect(res.status).toBe(201);
    const output = (await res.json()) as { id: string; type: string };
    expect(output.type).toBe('tcp-mpegts');
    expect(await rx.done).toBe(0);
    const probe = await ffprobe(out);
    expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 320, height: 240 });
    expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });
    expect((await fetch(`${t.url}/api/streams/tcp1/outputs/${output.id}`, { method: 'DELETE' })).status).toBe(204);
  });
});
