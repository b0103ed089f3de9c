import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentsOf } from '../helpers/hls-media.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { freeUdpPort } from '../helpers/free-port.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Core path with a real werift publisher and real ffmpeg: WHIP -> RTP -> session SDP ->
// ffmpeg -> HLS, checked with ffprobe.

describe('werift publisher -> HLS', () => {
  let t: TestGateway;
  let pub: Publisher;

  beforeAll(async () => {
    t = await startTestGateway();
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/int1`, width: 640, height: 360, stereo: true });
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('answers the offer with 201, Location and ETag', () => {
    expect(pub.status).toBe(201);
    expect(pub.location).toMatch(/^\/whip\/int1\/[0-9a-f-]{36}$/);
    expect(pub.answer).toContain('a=rtpmap:102 H264/90000');
    expect(pub.answer).toMatch(/a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 /);
    expect(pub.answer).not.toMatch(/a=candidate:.* (?!127\.0\.0\.1)\d+\.\d+\.\d+\.\d+ \d+ typ host/);
  });

  it('connects over loopback only', async () => {
    await pub.connected();
    const info = await waitFor('live stream', async () => {
      const s = (await (await fetch(`${t.url}/api/streams/int1`)).json()) as { state: string; ice?: { local: { address: string }; remote: { address: string } } };
      return s.state === 'live' && s.ice ? s : undefined;
    });
    expect(info.ice?.local.address).toBe('127.0.0.1');
    expect(info.ice?.remote.address).toBe('127.0.0.1');
  });

  it('produces HLS with copied H.264 and stereo AAC', async () => {
    const playlist = `${t.url}/hls/int1/index.m3u8`;
    await waitFor('playlist with 2 segments', async () => {
      const res = await fetch(playlist);
      if (!res.ok) return undefined;
      expect(res.headers.get('content-type')).toContain('application/vnd.apple.mpegurl');
      const text = await res.text();
      return segmentsOf(text).length >= 2 ? text : undefined;
    }, 20_000);
    const probe = await ffprobe(playlist);
    const v = probe.streams.find((s) => s.codec_type === 'video');
    const a = probe.streams.find((s) => s.codec_type === 'audio');
    expect(v).toMatchObject({ codec_name: 'h264', width: 640, height: 360 });
    expect(v?.profile).toMatch(/Baseline/);
    expect(a).toMatchObject({ codec_name: 'aac', channels: 2 });
  });

  it('writes session SDPs: HLS, started with the answer, reads SPS/PPS in-band; a later output gets sprop-parameter-sets', async () => {
    // HLS starts before the first keyframe (so it is listening when it comes): the SDP has
    // the offer's profile, and ffmpeg takes SPS/PPS from the keyframe the feed starts at.
    // (Low-Latency HLS keeps its media in memory: its SDP is in the output's folder, as every other output's.)
    const hls = await readFile(path.join(t.dataDir, 'outputs', 'int1', 'hls', 'session.sdp'), 'utf8');
    expect(hls).toMatch(/a=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n/);
    // HLS copies the stream's shared AAC (one encoder per stream sends it back as RTP).
    expect(hls).toMatch(/m=audio \d+ RTP\/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC\/48000\/2\r\na=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n/);
    const res = await fetch(`${t.url}/api/streams/int1/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'record', format: 'mkv' }) });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const sdp = await waitFor('the recording\'s session SDP', () => readFile(path.join(t.dataDir, 'outputs', 'int1', id, 'session.sdp'), 'utf8'));
    expect(sdp).toMatch(/a=fmtp:102 packetization-mode=1;profile-level-id=42\w{4};sprop-parameter-sets=Z\S+,aM\S+/);
    expect(sdp).toMatch(/m=audio \d+ RTP\/AVP 111\r\na=rtpmap:111 opus\/48000\/2/); // MKV keeps the Opus
    expect((await fetch(`${t.url}/api/streams/int1/outputs/${id}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('encodes the audio to AAC once per stream, however many outputs need AAC', async () => {
    const ffmpegs = async () => {
      const out: string[] = [];
      for (const pid of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid)) continue;
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== process.pid) continue;
        const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ');
        if (cmd.includes('ffmpeg') && cmd.includes('-localaddr 127.0.0.1')) out.push(cmd); // the gateway's, not the publisher's encoder
      }
      return out;
    };
    const udp = await fetch(`${t.url}/api/streams/int1/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'udp', url: `udp://127.0.0.1:${await freeUdpPort()}` }) });
    expect(udp.status).toBe(201);
    const { id } = (await udp.json()) as { id: string };
    await waitFor('the udp output running', async () => ((await (await fetch(`${t.url}/api/streams/int1/outputs/${id}`)).json()) as { state: string }).state === 'running' || undefined);
    const running = await ffmpegs();
    expect(running.length, running.join('\n')).toBe(3); // HLS, udp, and the one encoder
    expect(running.filter((c) => / -c:a aac /.test(c))).toHaveLength(1);
    expect(running.filter((c) => / -c:a copy /.test(c))).toHaveLength(2);
    expect((await fetch(`${t.url}/api/streams/int1/outputs/${id}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('reports tracks and the running HLS output in the API', async () => {
    const s = (await (await fetch(`${t.url}/api/streams/int1`)).json()) as {
      tracks: { kind: string; codec: string; packets: number; bitrateKbps: number; keyframes: number }[];
      outputs: { id: string; type: string; state: string }[];
    };
    const video = s.tracks.find((x) => x.kind === 'video');
    expect(video).toMatchObject({ codec: 'H264' });
    expect(video!.packets).toBeGreaterThan(100);
    expect(video!.keyframes).toBeGreaterThan(0);
    expect(s.tracks.find((x) => x.kind === 'audio')).toMatchObject({ codec: 'opus', channels: 2 });
    expect(s.outputs).toEqual([expect.objectContaining({ id: 'hls', type: 'hls', state: 'running' })]);
  });

  it('asks this publisher, which keeps its own 2 s GOP, for keyframes once per GOP, not per segment', async () => {
    // The test publisher's ffmpeg ignores PLIs (a fixed GOP, as OBS and hardware encoders):
    // the gateway learns that and its interval (media/keyframe-policy.ts), and stops asking
    // at every 1 s segment slot with retries every 500 ms.
    const video = await waitFor('the publisher\'s keyframe behaviour learned', async () => {
      const s = (await (await fetch(`${t.url}/api/streams/int1`)).json()) as { tracks: { kind: string; keyframeIntervalSeconds?: number; answersKeyframeRequests?: boolean }[] };
      const v = s.tracks.find((x) => x.kind === 'video');
      return v?.answersKeyframeRequests === false && v.keyframeIntervalSeconds !== undefined ? v : undefined;
    }, 20_000, 250);
    expect(video.keyframeIntervalSeconds).toBeCloseTo(2, 1);
    const before = pub.plis();
    await new Promise((r) => setTimeout(r, 6000));
    const plis = pub.plis() - before;
    console.log(`[werift-to-hls] PLIs to a 2 s GOP publisher that ignores them: ${plis} in 6 s`);
    expect(plis).toBeGreaterThanOrEqual(1); // still asked (it might start to answer)
    expect(plis).toBeLessThanOrEqual(4);
  });

  it('ends the playlist and removes the stream on DELETE', async () => {
    const res = await fetch(new URL(pub.location!, t.url), { method: 'DELETE' });
    expect(res.status).toBe(200);
    const text = await waitFor('ENDLIST', async () => {
      const body = await (await fetch(`${t.url}/hls/int1/index.m3u8`)).text();
      return body.includes('#EXT-X-ENDLIST') ? body : undefined;
    });
    expect(text).toContain('#EXT-X-ENDLIST');
    expect((await fetch(`${t.url}/api/streams/int1`)).status).toBe(404);
    expect((await fetch(new URL(pub.location!, t.url), { method: 'DELETE' })).status).toBe(404);
  });
});
