import sdpTransform from 'sdp-transform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDataChannelPublisher, type DataChannelPublisher } from '../helpers/datachannel-publisher.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import type { WhipAnswered } from '../helpers/whip-answered.js';
import { startGstPublisher } from '../helpers/gst-publisher.js';

// Real non-browser WHIP publishers against the gateway: GStreamer's webrtcbin (libnice),
// with both bundle policies, and libdatachannel shaped like OBS Studio's WHIP output, with
// and without candidates in the offer. Each must go live over loopback, give HLS with
// H.264 and AAC, report both tracks, and end on WHIP DELETE.

interface StreamInfo {
  state: string;
  ignoredMedia: { mid?: string; kind: string; reason: string }[];
  keyframeRequests: number;
  tracks: { kind: string; codec: string; packets: number; keyframeIntervalSeconds?: number; answersKeyframeRequests?: boolean }[];
  ice?: { local: { address: string; type: string }; remote: { address: string; type: string } };
}

/** What the cases need of a publisher, whichever client it is. */
interface AnyPublisher extends WhipAnswered {
  connected: () => Promise<void>;
  stop: (opts?: { delete?: boolean }) => Promise<number | undefined>;
}

let t: TestGateway;
/** The publisher of the first case (kept to the end for its measurement). */
let closePub: DataChannelPublisher | undefined;

beforeAll(async () => {
  t = await startTestGateway();
});

afterAll(async () => {
  await closePub?.stop({ delete: false });
  await t?.close();
});

const streamInfo = async (name: string): Promise<StreamInfo | undefined> => {
  const res = await fetch(`${t.url}/api/streams/${name}`);
  return res.ok ? ((await res.json()) as StreamInfo) : undefined;
};

/** Resolves with ms from the WHIP answer to the first segment listed in the stream's playlist. */
function firstSegmentAfter(name: string, answeredAt: () => number): Promise<number> {
  return waitFor('a segment in the playlist', async () => {
    const res = await fetch(`${t.url}/hls/${name}/index.m3u8`);
    if (!res.ok) return undefined;
    return /\.(ts|m4s)\b/.test(await res.text()) ? Math.round(performance.now() - answeredAt()) : undefined;
  }, 25_000, 50);
}

/** For every section the offer sends: is it accepted (in the answer's BUNDLE group, a port, not inactive)? */
function refusedSections(offer: string, answer: string): string[] {
  const o = sdpTransform.parse(offer);
  const a = sdpTransform.parse(answer);
  const bundled = new Set(String(a.groups?.find((g) => g.type === 'BUNDLE')?.mids ?? '').split(/\s+/));
  const refused: string[] = [];
  for (const m of o.media) {
    const am = a.media.find((x) => String(x.mid) === String(m.mid));
    const why = !am ? ['missing'] : [am.port === 0 && 'port 0', am.direction === 'inactive' && 'a=inactive', !bundled.has(String(m.mid)) && 'not in BUNDLE'].filter(Boolean);
    if (why.length) refused.push(`${m.type} (mid ${m.mid}): ${why.join(', ')}`);
  }
  return refused;
}

const candidateAddresses = (sdp: string): string[] => [...sdp.matchAll(/^a=candidate:\S+ \d+ \S+ \d+ (\S+) /gm)].map((m) => m[1]);

/** The assertions every publisher has to meet, on a publisher of its own. */
function publisherCases<P extends AnyPublisher>(label: string, name: string, start: (whipUrl: string) => Promise<P>, extra?: (p: () => P) => void): void {
  describe(label, () => {
    let pub: P;
    let firstSegment: Promise<number>;

    beforeAll(async () => {
      pub = await start(`${t.url}/whip/${name}`);
      firstSegment = firstSegmentAfter(name, () => pub.answeredAt);
      firstSegment.catch(() => undefined);
    });

    afterAll(async () => {
      await pub?.stop({ delete: true });
    });

    it('answers 201 with a Location', () => {
      expect(pub.status, pub.errorText).toBe(201);
      expect(pub.location).toMatch(new RegExp(`/whip/${name}/[0-9a-f-]{36}$`));
      console.log(`[${label}] offer:\n${pub.offer}\n[${label}] answer:\n${pub.answer}`);
    });

    it('accepts both offered sections in the answer, and leaves nothing out', async () => {
      expect(refusedSections(pub.offer, pub.answer)).toEqual([]);
      expect((await streamInfo(name))?.ignoredMedia).toEqual([]);
    });

    it('goes live, connected over 127.0.0.1 on both sides', async () => {
      await pub.connected();
      const info = await waitFor('live stream with a selected pair', async () => {
        const s = await streamInfo(name);
        return s?.state === 'live' && s.ice ? s : undefined;
      });
      expect(info.ice?.local.address).toBe('127.0.0.1');
      expect(info.ice?.remote.address).toBe('127.0.0.1');
    });

    it('reports an H.264 and an audio track', async () => {
      const s = await waitFor('both tracks with packets', async () => {
        const info = await streamInfo(name);
        const ok = ['video', 'audio'].every((k) => info?.tracks.some((x) => x.kind === k && x.packets > 0));
        return ok ? info : undefined;
      }, 5000).catch(async () => streamInfo(name));
      expect(s?.tracks.map((x) => `${x.kind} ${x.codec}`).sort()).toEqual(['audio opus', 'video H264']);
      expect(s?.tracks.every((x) => x.packets > 0)).toBe(true);
    });

    it('gives HLS with H.264 and AAC', async () => {
      const ms = await firstSegment;
      console.log(`[${label}] first HLS segment listed ${ms} ms after the WHIP 201`);
      const probe = await ffprobe(`${t.url}/hls/${name}/index.m3u8`);
      expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 1280, height: 720 });
      expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });
    });

    extra?.(() => pub);

    it('ends on WHIP DELETE', async () => {
      expect(await pub.stop({ delete: true })).toBe(200);
      await waitFor('the stream gone', async () => ((await fetch(`${t.url}/api/streams/${name}`)).status === 404 ? true : undefined), 5000);
    });
  });
}

describe('libdatachannel (OBS shape) when the gateway ends the session', () => {
  // The gateway sends an RTCP BYE and a DTLS close_notify (webrtc/close-notify.ts) as soon
  // as it ends a session; libdatachannel (and OBS, which stops its output on
  // "disconnected"/"failed"/"closed") acts on the close_notify. Without it, it stayed
  // "connected" ~30 s, until ICE consent ran out.
  it('leaves "connected" within 2 s of DELETE /api/streams/<name>', async () => {
    const pub = await startDataChannelPublisher({ whipUrl: `${t.url}/whip/obs-close`, candidates: 'none', width: 640, height: 360, videoKbps: 800 });
    closePub = pub;
    expect(pub.status, pub.errorText).toBe(201);
    await pub.connected();
    await waitFor('live', async () => ((await streamInfo('obs-close'))?.state === 'live' ? true : undefined));
    const deletedAt = performance.now();
    expect((await fetch(`${t.url}/api/streams/obs-close`, { method: 'DELETE' })).status).toBe(204);
    await waitFor('the publisher to leave "connected"', () => (pub.state() !== 'connected' ? true : undefined), 2000, 5);
    const left = pub.states.find((s) => s.at > deletedAt && s.state !== 'connected');
    console.log(`[libdatachannel] left "connected" ${Math.round((left?.at ?? performance.now()) - deletedAt)} ms after DELETE /api/streams/obs-close (states: ${pub.states.map((s) => s.state).join(' -> ')})`);
  });
});

publisherCases('GStreamer webrtcbin, bundle-policy max-compat', 'gst-compat', (whipUrl) => startGstPublisher({ whipUrl, bundlePolicy: 'max-compat' }));

// A max-bundle offer's audio section is `m=audio 0` with `a=bundle-only` (RFC 8843): the
// gateway takes it into the bundle (sdp/bundle-only.ts); it once answered it rejected.
publisherCases('GStreamer webrtcbin, bundle-policy max-bundle', 'gst-bundle', (whipUrl) => startGstPublisher({ whipUrl, bundlePolicy: 'max-bundle' }));

publisherCases('libdatachannel (OBS < 30.1 shape), candidates in the offer', 'obs-cands', (whipUrl) => startDataChannelPublisher({ whipUrl, candidates: 'in-offer' }), (pub) => {
  it('is asked for keyframes about once per its 2 s GOP, which it keeps (it ignores requests); HLS segments follow the GOP', async () => {
    // Like OBS, the client ignores PLIs: its encoder has a fixed 2 s GOP. The gateway
    // learns both (media/keyframe-policy.ts); it asked 3-4 times a second before.
    const video = await waitFor('the keyframe behaviour learned', async () => {
      const v = (await streamInfo('obs-cands'))?.tracks.find((x) => x.kind === 'video');
      return v?.answersKeyframeRequests === false && v.keyframeIntervalSeconds !== undefined ? v : undefined;
    }, 20_000, 250);
    expect(video.keyframeIntervalSeconds).toBeGreaterThan(1.7);
    expect(video.keyframeIntervalSeconds).toBeLessThan(2.3);
    const from = performance.now();
    const before = (await streamInfo('obs-cands'))!.keyframeRequests;
    await new Promise((r) => setTimeout(r, 10_000));
    const received = pub().plis.filter((at) => at >= from).length;
    const counted = (await streamInfo('obs-cands'))!.keyframeRequests - before;
    console.log(`[obs-cands] PLIs in 10 s once learned: ${received} received by the client (${counted} counted by the gateway); keyframe interval ${video.keyframeIntervalSeconds} s`);
    expect(received).toBeGreaterThanOrEqual(1); // still asked, in case it starts answering
    expect(received).toBeLessThanOrEqual(6); // one per 2 s GOP, and a margin of one
    // HLS cuts at the keyframes it gets: 2 s segments, and a target duration that says so.
    const playlist = await (await fetch(`${t.url}/hls/obs-cands/index.m3u8`)).text();
    const durations = [...playlist.matchAll(/^#EXTINF:([\d.]+),/gm)].map((m) => Number(m[1]));
    const target = Number(/^#EXT-X-TARGETDURATION:(\d+)/m.exec(playlist)?.[1]);
    console.log(`[obs-cands] HLS: #EXT-X-TARGETDURATION:${target}, segments ${durations.join(', ')} s`);
    expect(durations.length).toBeGreaterThanOrEqual(3);
    for (const d of durations.slice(1)) expect(d).toBeCloseTo(2, 0);
    expect(target).toBe(2);
    expect(Math.max(...durations.map(Math.round))).toBeLessThanOrEqual(target);
  }, 40_000);

  it('offers host candidates on 127.0.0.1 only', () => {
    console.log(`[obs-cands] RTP packets dropped before the track opened: ${JSON.stringify(pub().dropped)}`);
    const addrs = candidateAddresses(pub().offer);
    expect(addrs.length).toBeGreaterThan(0);
    expect(new Set(addrs)).toEqual(new Set(['127.0.0.1']));
  });
});

publisherCases('libdatachannel (OBS 30.1+ shape), no candidates in the offer', 'obs-nocands', (whipUrl) => startDataChannelPublisher({ whipUrl, candidates: 'none' }), (pub) => {
  it('offers no candidates; the gateway pairs with a peer-reflexive one', async () => {
    console.log(`[obs-nocands] RTP packets dropped before the track opened: ${JSON.stringify(pub().dropped)}`);
    expect(candidateAddresses(pub().offer)).toEqual([]);
    expect((await streamInfo('obs-nocands'))?.ice?.remote.type).toBe('prflx');
  });
});
