import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffprobe } from '../helpers/ffprobe.js';
import { freeUdpPort } from '../helpers/free-port.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { ffmpegReceiver, playerDir } from '../helpers/players.js';
import { rtmpServerAvailable, startRtmpServer } from '../helpers/rtmp-server.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Push outputs against real local receivers: an ffmpeg SRT listener, an ffmpeg UDP reader
// and nginx-rtmp; and the restart of a pushing ffmpeg killed with SIGKILL.

describe('push outputs', () => {
  let t: TestGateway;
  let pub: Publisher;
  let dir: string;
  const post = async (body: object) => {
    const res = await fetch(`${t.url}/api/streams/push/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (res.status === 201 ? await res.json() : ((await res.json()) as { message: string }).message) as { id: string; state: string } & string };
  };
  const state = async (id: string) => ((await (await fetch(`${t.url}/api/streams/push/outputs/${id}`)).json()) as { state: string; restarts: number; error?: string; bytesOut: number });

  beforeAll(async () => {
    t = await startTestGateway();
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/push`, width: 320, height: 240, gop: 30 });
    await pub.connected();
    dir = await playerDir();
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('pushes MPEG-TS over SRT to a listener', async () => {
    const port = await freeUdpPort(); // SRT runs over UDP
    const out = path.join(dir, 'srt.ts');
    const rx = ffmpegReceiver(`srt://127.0.0.1:${port}?mode=listener`, out, 3);
    await new Promise((r) => setTimeout(r, 500));
    const { status, body } = await post({ type: 'srt', url: `srt://127.0.0.1:${port}?mode=caller` });
    expect(status).toBe(201);
    expect(await rx.done).toBe(0);
    const probe = await ffprobe(out);
    expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 320, height: 240 });
    expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });
    await fetch(`${t.url}/api/streams/push/outputs/${body.id}`, { method: 'DELETE' });
  });

  it('pushes MPEG-TS over UDP to a reader', async () => {
    const port = await freeUdpPort();
    const out = path.join(dir, 'udp.ts');
    const rx = ffmpegReceiver(`udp://127.0.0.1:${port}?timeout=20000000`, out, 3);
    await new Promise((r) => setTimeout(r, 300));
    const { status, body } = await post({ type: 'udp', url: `udp://127.0.0.1:${port}?pkt_size=1316` });
    expect(status).toBe(201);
    expect(await rx.done).toBe(0);
    const probe = await ffprobe(out);
    expect(probe.streams.map((s) => s.codec_name).sort()).toEqual(['aac', 'h264']);
    await fetch(`${t.url}/api/streams/push/outputs/${body.id}`, { method: 'DELETE' });
  });

  it.skipIf(!rtmpServerAvailable)('pushes FLV over RTMP to nginx-rtmp (skipped only without nginx + libnginx-mod-rtmp)', async () => {
    const server = await startRtmpServer();
    try {
      const { status, body } = await post({ type: 'rtmp', url: `rtmp://127.0.0.1:${server.port}/live/push` });
      expect(status).toBe(201);
      await waitFor('rtmp running', async () => ((await state(body.id)).state === 'running' ? true : undefined));
      const probe = await ffprobe(`rtmp://127.0.0.1:${server.port}/live/push`);
      expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 320, height: 240 });
      expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });
      await fetch(`${t.url}/api/streams/push/outputs/${body.id}`, { method: 'DELETE' });
    } finally {
      await server.stop();
    }
  });

  it('restarts a pushing ffmpeg killed with SIGKILL, then reports failure with ffmpeg’s words when the target stays away', async () => {
    const port = await freeUdpPort(); // SRT runs over UDP
    const out = path.join(dir, 'srt2.ts');
    const rx = ffmpegReceiver(`srt://127.0.0.1:${port}?mode=listener`, out, 20);
    await new Promise((r) => setTimeout(r, 500));
    const { body } = await post({ type: 'srt', url: `srt://127.0.0.1:${port}?mode=caller&connect_timeout=1000` });
    await waitFor('srt running', async () => ((await state(body.id)).state === 'running' ? true : undefined));
    const output = t.gw.registry.get('push')!.outputs.get(body.id)!;
    const pid = output.pid!;
    process.kill(pid, 'SIGKILL');
    await waitFor('restarting', async () => ((await state(body.id)).state === 'restarting' ? true : undefined), 5000, 20);
    // The listener accepted one caller and is gone with it: the restarts find nobody.
    const final = await waitFor('failed', async () => {
      const s = await state(body.id);
      return s.state === 'failed' ? s : undefined;
    }, 60_000, 200);
    expect(final.restarts).toBeGreaterThanOrEqual(1);
    expect(final.error).toBeTruthy();
    await rx.done;
  }, 90_000);

  it('refuses bad push bodies with a 400 naming the field', async () => {
    expect(await post({ type: 'srt' })).toMatchObject({ status: 400 });
    expect((await post({ type: 'srt', url: 'file:///etc/passwd' })).body).toMatch(/^url: must be a srt:\/\/ URL/);
    expect((await post({ type: 'rtmp', url: 'srt://x:1' })).body).toMatch(/^url: must be a rtmp:\/\/ or rtmps:\/\/ URL/);
    expect((await post({ type: 'udp', url: 'udp://127.0.0.1:5000', extra: 1 })).body).toMatch(/extra: unknown field for udp/);
  });
});
