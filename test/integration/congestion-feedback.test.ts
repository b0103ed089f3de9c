import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunLengthChunk, type TransportWideCC } from 'werift';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// A real werift publisher that numbers its packets transport-wide (as browsers do) gets
// transport-cc feedback from the gateway: every packet it sent reported as received (on
// loopback nothing is lost), from one feedback generator only (werift's own, which
// reports wrong deltas and made Chromium fall to 180p, must not run alongside), and the
// answer carries the bitrate range for the stream.

/**
 * Received or not, per sequence number, from werift's parse of the chunks (its own
 * packetResults skips status vector chunks, so it is not used).
 */
function statuses(f: TransportWideCC): [number, boolean][] {
  const symbols = f.packetChunks.flatMap((c) => (c instanceof RunLengthChunk ? Array<number>(c.runLength).fill(c.packetStatus) : c.symbolList));
  return symbols.slice(0, f.packetStatusCount).map((s, i) => [(f.baseSequenceNumber + i) & 0xffff, s !== 0]);
}

describe('congestion-control feedback to a werift publisher', () => {
  let t: TestGateway;
  let pub: Publisher;
  let low: Publisher;

  beforeAll(async () => {
    t = await startTestGateway({ video: { maxBitrateKbps: 3000, startBitrateKbps: 1500, streams: [{ streams: 'low-*', maxBitrateKbps: 600 }] } });
    [pub, low] = await Promise.all([
      startWeriftPublisher({ whipUrl: `${t.url}/whip/twcc1`, transportCc: true, videoKbps: 800 }),
      startWeriftPublisher({ whipUrl: `${t.url}/whip/low-1`, transportCc: true, videoKbps: 300 }),
    ]);
  });

  afterAll(async () => {
    await pub?.stop();
    await low?.stop();
    await t?.close();
  });

  it('answers with transport-cc feedback and the configured bitrate range', () => {
    expect(pub.status, pub.errorText).toBe(201);
    expect(pub.answer).toMatch(/^a=rtcp-fb:102 transport-cc\r$/m);
    expect(pub.answer).toMatch(/^a=rtcp-fb:111 transport-cc\r$/m);
    expect(pub.answer).toMatch(/^a=extmap:\d+ http:\/\/www\.ietf\.org\/id\/draft-holmer-rmcat-transport-wide-cc-extensions-01\r$/m);
    expect(pub.answer).toMatch(/^b=AS:3000\r$/m);
    expect(pub.answer).toMatch(/^b=TIAS:3000000\r$/m);
    expect(pub.answer).toMatch(/^a=fmtp:102 .*;x-google-max-bitrate=3000;x-google-start-bitrate=1500\r$/m);
    // A stream matching video.streams gets its own range; the start is capped by it.
    expect(low.answer).toMatch(/^b=AS:600\r$/m);
    expect(low.answer).toMatch(/x-google-max-bitrate=600;x-google-start-bitrate=600\r$/m);
  });

  it('reports every packet the publisher sent as received, several times a second, from one generator', async () => {
    await pub.connected();
    await waitFor('3 s of media', async () => ((await (await fetch(`${t.url}/api/streams/twcc1`)).json()) as { state: string }).state === 'live' || undefined);
    const from = pub.twcc.length;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    const feedback = pub.twcc.slice(from);
    const seconds = (Date.now() - t0) / 1000;
    // The draft asks for feedback every 50-100 ms or so; anything under 5 a second is broken.
    expect(feedback.length / seconds).toBeGreaterThan(5);
    // One generator: one sender SSRC, and werift parsed every packet of it. (werift's own
    // generator, which it starts for any codec the offer gives transport-cc, would be a
    // second SSRC.)
    expect([...pub.twccSenders.keys()], JSON.stringify([...pub.twccSenders])).toHaveLength(1);
    expect([...pub.twccSenders.values()][0]).toBe(pub.twcc.length);
    // One feedback counter, counting up: a second generator would interleave its own.
    const counts = feedback.map((f) => f.fbPktCount);
    expect(counts.every((c, i) => i === 0 || c === ((counts[i - 1] + 1) & 0xff)), counts.join(' ')).toBe(true);
    // Every number from the first reported to the last is reported, and as received.
    const status = new Map<number, boolean>();
    for (const f of feedback) for (const [seq, received] of statuses(f)) status.set(seq, received);
    const first = feedback[0].baseSequenceNumber;
    const last = feedback.at(-1)!.baseSequenceNumber + feedback.at(-1)!.packetStatusCount - 1;
    expect(last - first).toBeGreaterThan(100);
    const missing = [];
    for (let s = first; s <= last; s++) if (status.get(s & 0xffff) !== true) missing.push(s);
    expect(missing).toEqual([]);
    // The feedback keeps up with what was sent (within a few reports).
    expect(pub.lastTransportSequence() - (last & 0xffff)).toBeLessThan(200);
  });
});
