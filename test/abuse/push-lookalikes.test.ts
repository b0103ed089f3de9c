import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ffprobe } from '../helpers/ffprobe.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { ffmpegReceiver, playerDir } from '../helpers/players.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// push.allowedTargets through the REST API, with a live publisher: the look-alikes an
// audit found (a URL pattern's * spanning host and path, srt options after '#', a name
// with one allowed and one unlisted address...) get a 4xx and start no ffmpeg, and an
// allowed target still gets the stream, sent to the address that was checked.
//
// The gateway's name lookups are answered from a table here: names under .invalid, which
// no resolver knows (ffmpeg could not look them up itself), and addresses on loopback or
// in documentation ranges that are refused before anything is sent.

const NAMES: Record<string, string[]> = {
  'rx.invalid': ['127.0.0.1'],
  'mixed.invalid': ['127.0.0.1', '203.0.113.9'],
  'a.ingest.invalid': ['192.0.2.10'],
};

vi.mock('node:dns/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:dns/promises')>();
  const lookup = (async (host: string, options?: object) => {
    const fake = NAMES[host];
    if (!fake) return real.lookup(host, options as { all: true });
    return fake.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  }) as typeof real.lookup;
  return { ...real, lookup, default: { ...real, lookup } };
});

describe('push.allowedTargets through the API', () => {
  let t: TestGateway;
  let pub: Publisher;
  const port = 47800 + (process.pid % 400) * 2;
  const post = async (body: object) => {
    const res = await fetch(`${t.url}/api/streams/push/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.json()) as { id?: string; message?: string };
    return { status: res.status, id: json.id, message: json.message ?? '' };
  };
  const outputs = async () => ((await (await fetch(`${t.url}/api/streams/push/outputs`)).json()) as { id: string; type: string }[]).filter((o) => o.type !== 'hls');

  beforeAll(async () => {
    t = await startTestGateway({ push: { allowedTargets: ['127.0.0.1', 'rtmp://*.ingest.invalid/app/*'] } });
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/push`, width: 320, height: 240, gop: 30 });
    await pub.connected();
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('refuses the look-alikes with a 4xx naming the problem, and starts nothing for them', async () => {
    const cases: [object, number, RegExp][] = [
      [{ type: 'rtmp', url: 'rtmp://203.0.113.9/x.ingest.invalid/app/k' }, 403, /^url: 203\.0\.113\.9 is not an allowed push target/],
      [{ type: 'rtmp', url: 'rtmp://a.ingest.invalid@203.0.113.9/app/k' }, 403, /^url: 203\.0\.113\.9 is not an allowed push target/],
      [{ type: 'rtmp', url: 'RTMP://a.ingest.invalid/app/k' }, 400, /^url: the scheme must be written in lower case/],
      [{ type: 'rtmp', url: 'rtmp://a.ingest.invalid./app/k' }, 400, /^url: must not end the host name with a dot/],
      [{ type: 'rtmp', url: 'rtmp://a.ingest.invalid/app/%2e%2e/k' }, 400, /^url: must not percent-encode dots/],
      [{ type: 'rtmp', url: 'rtmp://127.0.0.1/app?listen=1' }, 400, /^url: must push to a listener, not listen itself/],
      [{ type: 'srt', url: `srt://127.0.0.1:${port}#?mode=listener` }, 400, /^url: must not contain # before the options/],
      [{ type: 'srt', url: `srt://127.0.0.1:${port}?MODE=Listener` }, 400, /^url: must push to a listener, not listen itself/],
      [{ type: 'srt', url: 'srt://127.0.0.1:70000' }, 400, /^url: the port must be a number from 1 to 65535/],
      [{ type: 'srt', url: `srt://allowed.invalid@127.0.0.1:${port}` }, 400, /^url: must not contain user information/],
      [{ type: 'udp', url: `udp://127.1:${port}` }, 400, /^url: must write an IPv4 host as four decimal numbers/],
      [{ type: 'udp', url: `udp://127.0.0.1:${port}?localport=${port + 1}` }, 400, /^url: must not choose a local port/],
      [{ type: 'udp', url: `udp://mixed.invalid:${port}` }, 403, /^url: mixed\.invalid resolves to 203\.0\.113\.9 too, which is not an allowed push target/],
      [{ type: 'rtp-mpegts', host: 'mixed.invalid', port }, 403, /^host: mixed\.invalid resolves to 203\.0\.113\.9 too/],
      [{ type: 'rtp', host: 'mixed.invalid', videoPort: port }, 403, /^host: mixed\.invalid resolves to 203\.0\.113\.9 too/],
    ];
    for (const [body, status, message] of cases) {
      const res = await post(body);
      expect([res.status, res.message], JSON.stringify(body)).toEqual([status, expect.stringMatching(message)]);
    }
    expect(await outputs()).toEqual([]);
  });

  it('an allowed name still gets the stream, at the checked address: ffmpeg itself could not look the name up', async () => {
    const out = path.join(await playerDir(), 'allowed.ts');
    const rx = ffmpegReceiver(`udp://127.0.0.1:${port}?timeout=20000000`, out, 3);
    await new Promise((r) => setTimeout(r, 300));
    const { status, id, message } = await post({ type: 'udp', url: `udp://rx.invalid:${port}?pkt_size=1316` });
    expect([status, message]).toEqual([201, '']);
    expect(await rx.done).toBe(0);
    const probe = await ffprobe(out);
    expect(probe.streams.map((s) => s.codec_name).sort()).toEqual(['aac', 'h264']);
    const output = t.gw.registry.get('push')!.outputs.get(id!)!;
    expect(output.state).toBe('running');
    await fetch(`${t.url}/api/streams/push/outputs/${id}`, { method: 'DELETE' });
    await waitFor('output gone', async () => ((await outputs()).length === 0 ? true : undefined));
  });
});
