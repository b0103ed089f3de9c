import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastSequence } from '../helpers/hls-media.js';
import { getStream, waitLive } from '../helpers/e2e-api.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// A publisher whose video changes SSRC without a new offer (as an encoder restart in some
// WHIP clients does) keeps its video: werift drops packets of an SSRC the offer did not
// announce, and video used to stop for good while audio kept the stream "live".

describe('video that changes SSRC without a new offer', () => {
  let t: TestGateway;
  let pub: Publisher;

  beforeAll(async () => {
    t = await startTestGateway();
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/ssrc1`, width: 320, height: 240, gop: 30, switchVideoSsrcAfterMs: 3000 });
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('keeps flowing to the outputs after the switch', async () => {
    expect(pub.status, pub.errorText).toBe(201);
    await pub.connected();
    await waitLive(t.url, 'ssrc1');
    const video = async () => (await getStream(t.url, 'ssrc1')).info!.tracks.find((x) => x.kind === 'video')!;
    /** The newest segment's number: grows by one a second while HLS advances. */
    const sequence = async () => lastSequence(await (await fetch(`${t.url}/hls/ssrc1/index.m3u8`)).text());
    await new Promise((r) => setTimeout(r, 4000)); // past the switch
    const before = { video: await video(), sequence: await sequence() };
    await new Promise((r) => setTimeout(r, 4000));
    const after = { video: await video(), sequence: await sequence() };
    expect(after.video.packets - before.video.packets, 'video packets after the switch').toBeGreaterThan(100);
    expect(after.video.keyframes - before.video.keyframes, 'keyframes after the switch').toBeGreaterThanOrEqual(3);
    expect(after.sequence, 'HLS advancing').toBeGreaterThanOrEqual(before.sequence + 3);
    expect(after.video.fps).toBeGreaterThan(20);
  });
});
