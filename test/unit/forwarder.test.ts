import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { RtpForwarder } from '../../src/rtp/forwarder.js';
import { parseRtp, type RtpPacketLite } from '../../src/rtp/packet.js';
import { startsKeyframe } from '../../src/rtp/h264.js';

// The forwarder sends real UDP on loopback; a socket in the test plays ffmpeg.

const IDR = Buffer.from([0x65, 0x88, 0x84]);
const SPS = Buffer.from([0x67, 0x42, 0xe0, 0x1f]);
const P = Buffer.from([0x41, 0x9a, 0x02]);

let sockets: dgram.Socket[] = [];
afterEach(() => {
  sockets.forEach((s) => s.close());
  sockets = [];
});

async function receiver(): Promise<{ port: number; got: RtpPacketLite[] }> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  const got: RtpPacketLite[] = [];
  s.on('message', (m) => got.push(parseRtp(m)));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return { port: s.address().port, got };
}

const settle = () => new Promise((r) => setTimeout(r, 50));

describe('RTP forwarder', () => {
  it('starts video at a keyframe and rewrites SSRC and payload type', async () => {
    const rx = await receiver();
    const f = new RtpForwarder({ port: rx.port, payloadType: 102, clockRate: 90000, isKeyframeStart: startsKeyframe });
    f.send({ payloadType: 96, sequenceNumber: 1, timestamp: 100, ssrc: 7, marker: true, payload: P }); // not open yet
    f.open();
    f.send({ payloadType: 96, sequenceNumber: 2, timestamp: 200, ssrc: 7, marker: true, payload: P }); // waits for keyframe
    f.send({ payloadType: 96, sequenceNumber: 3, timestamp: 300, ssrc: 7, marker: false, payload: SPS });
    f.send({ payloadType: 96, sequenceNumber: 4, timestamp: 300, ssrc: 7, marker: true, payload: IDR });
    f.send({ payloadType: 96, sequenceNumber: 5, timestamp: 400, ssrc: 7, marker: true, payload: P });
    await settle();
    expect(rx.got.map((p) => p.payload[0])).toEqual([0x67, 0x65, 0x41]);
    expect(new Set(rx.got.map((p) => p.ssrc))).toEqual(new Set([f.ssrc]));
    expect(rx.got.every((p) => p.payloadType === 102)).toBe(true);
    expect(rx.got[1].timestamp).toBe(rx.got[0].timestamp); // same frame, same timestamp
    expect((rx.got[2].timestamp - rx.got[1].timestamp) >>> 0).toBe(100);
    f.close();
  });

  it('keeps sequence numbers and timestamps continuous when the source SSRC changes', async () => {
    const rx = await receiver();
    const f = new RtpForwarder({ port: rx.port, payloadType: 111, clockRate: 48000 });
    f.open();
    for (let i = 0; i < 3; i++) f.send({ payloadType: 111, sequenceNumber: 1000 + i, timestamp: 5000 + i * 960, ssrc: 1, marker: false, payload: P });
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 3; i++) f.send({ payloadType: 111, sequenceNumber: 9 + i, timestamp: 123456789 + i * 960, ssrc: 2, marker: false, payload: P });
    await settle();
    const seqs = rx.got.map((p) => p.sequenceNumber);
    for (let i = 1; i < seqs.length; i++) expect((seqs[i] - seqs[i - 1]) & 0xffff).toBe(1);
    const ts = rx.got.map((p) => p.timestamp);
    const jump = (ts[3] - ts[2]) >>> 0;
    expect(jump).toBeGreaterThan(0);
    expect(jump).toBeLessThan(48000); // about the 20 ms that passed, not a leap
    expect((ts[4] - ts[3]) >>> 0).toBe(960);
    expect(new Set(rx.got.map((p) => p.ssrc)).size).toBe(1);
    f.close();
  });
});
