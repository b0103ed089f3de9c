import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffprobe } from '../helpers/ffprobe.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// streams.resumeOutputsSeconds: a back end starts outputs over REST; the publisher drops
// and comes back under the same name; the outputs start again with their ids (a plain RTP
// forward reaches its receiver again, a recording goes on in a new file). Meanwhile they
// are listed as waiting; an output the back end stopped, before or while waiting, stays
// stopped, and an operator's DELETE of the stream ends them all.

/** A UDP receiver on an even port (RTP outputs want one). */
async function evenPortSocket(onMessage: () => void): Promise<dgram.Socket> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    if ((s.address() as AddressInfo).port % 2 === 0) return s.on('message', onMessage);
    s.close();
  }
  throw new Error('no even UDP port in 50 tries');
}

interface OutputInfo {
  id: string;
  type: string;
  state: string;
}

describe('outputs wait for a returning publisher', () => {
  let t: TestGateway;
  let socket: dgram.Socket;
  let packets = 0;
  const pubs: Publisher[] = [];
  const publish = async () => {
    const pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/back`, width: 320, height: 180, gop: 30 });
    pubs.push(pub);
    expect(pub.status).toBe(201);
    await pub.connected();
    await waitFor('stream live', async () => ((await (await fetch(`${t.url}/api/streams/back`)).json()) as { state: string }).state === 'live' || undefined);
    return pub;
  };
  const outputs = async () => (await (await fetch(`${t.url}/api/streams/back/outputs`)).json()) as OutputInfo[];
  const post = async (body: object) => {
    const r = await fetch(`${t.url}/api/streams/back/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    expect(r.status).toBe(201);
    return (await r.json()) as OutputInfo;
  };

  beforeAll(async () => {
    t = await startTestGateway({ hls: { auto: false }, streams: { resumeOutputsSeconds: 30 } });
    socket = await evenPortSocket(() => packets++);
  });
  afterAll(async () => {
    for (const p of pubs) await p.stop();
    socket?.close();
    await t?.close();
  });

  it('starts the REST outputs again, with their ids, when the publisher returns', async () => {
    const first = await publish();
    const rtp = await post({ type: 'rtp', host: '127.0.0.1', videoPort: (socket.address() as AddressInfo).port });
    const record = await post({ type: 'record', format: 'mkv' });
    const stopped = await post({ type: 'record' });
    expect((await fetch(`${t.url}/api/streams/back/outputs/${stopped.id}`, { method: 'DELETE' })).status).toBe(204);
    const cancelled = await post({ type: 'record' });
    await waitFor('RTP at the receiver', () => packets > 30 || undefined);
    await waitFor('recording running', async () => (await outputs()).find((o) => o.id === record.id)?.state === 'running' || undefined);
    await new Promise((r) => setTimeout(r, 2000)); // a recording worth probing

    await first.stop(); // WHIP DELETE: the publisher leaves
    await waitFor('stream gone', async () => (await fetch(`${t.url}/api/streams/back`)).status === 404 || undefined);
    packets = 0;
    // Meanwhile the back end sees them waiting, and can still stop one.
    const waiting = await outputs();
    expect(waiting.map((o) => [o.id, o.state]).sort()).toEqual([rtp.id, record.id, cancelled.id].map((id) => [id, 'waiting']).sort());
    expect((await fetch(`${t.url}/api/streams/back/outputs/${cancelled.id}`, { method: 'DELETE' })).status).toBe(204);

    await publish();
    const resumed = await waitFor('outputs running again', async () => {
      const list = await outputs();
      return list.length === 2 && list.every((o) => o.state === 'running') ? list : undefined;
    });
    expect(resumed.map((o) => o.id).sort()).toEqual([rtp.id, record.id].sort());
    await waitFor('RTP at the receiver again', () => packets > 30 || undefined);

    // The first recording was finalised and is playable; the second one is being written.
    const mine = await waitFor('both recordings listed', async () => {
      const recordings = (await (await fetch(`${t.url}/api/recordings`)).json()) as { stream: string; file: string; endedAt?: string; durationSeconds: number | null }[];
      const list = recordings.filter((r) => r.stream === 'back' && r.file.endsWith('.mkv'));
      return list.length === 2 ? list : undefined;
    });
    const done = mine.find((r) => r.endedAt);
    expect(done?.durationSeconds, JSON.stringify(mine)).toBeGreaterThan(1.5); // ~2.9 s recorded, from the first keyframe on
    const probe = await ffprobe(`${t.dataDir}/recordings/back/${done!.file}`);
    expect(probe.streams.map((s) => s.codec_type).sort()).toEqual(['audio', 'video']);
  }, 60_000);

  it('does not start them again after an operator removed the stream', async () => {
    expect((await fetch(`${t.url}/api/streams/back`, { method: 'DELETE' })).status).toBe(204);
    await publish();
    await new Promise((r) => setTimeout(r, 2000));
    expect(await outputs()).toEqual([]);
  }, 30_000);
});
