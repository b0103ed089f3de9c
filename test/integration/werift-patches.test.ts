import * as sdpTransform from 'sdp-transform';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket, usePLI, useNACK } from 'werift';
import { acceptBundleOnly } from '../../src/sdp/bundle-only.js';
import { credentialsOf } from '../../src/sdp/ice-fragment.js';
import { announceClose } from '../../src/werift/close-notify.js';
import { installIceConnectWait } from '../../src/werift/ice-connect-wait.js';
import { restartForNewCredentials } from '../../src/werift/ice-restart.js';
import { keepToConfiguredStun } from '../../src/werift/stun-default.js';
import { waitFor } from '../helpers/gateway.js';
import { resumeIceChecks } from '../helpers/werift-publisher.js';

// What the gateway does around werift's own behaviour, each checked against werift itself
// (two werift peers on 127.0.0.1): when one of these fails after a werift upgrade, the
// workaround in src/ is either broken or no longer needed. Each case says which.

const loopback = {
  iceServers: [],
  iceUseIpv4: false,
  iceUseIpv6: false,
  iceAdditionalHostAddresses: ['127.0.0.1'],
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
};
const h264 = () => new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, payloadType: 96, parameters: 'packetization-mode=1;profile-level-id=42e01f', rtcpFeedback: [useNACK(), usePLI()] });
const opus = () => new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 });
const peers: RTCPeerConnection[] = [];
const peer = () => {
  const pc = new RTCPeerConnection({ ...loopback, codecs: { video: [h264()], audio: [opus()] } });
  peers.push(pc);
  return pc;
};

async function gathered(pc: RTCPeerConnection): Promise<string> {
  keepToConfiguredStun(pc, []);
  await pc.setLocalDescription(await pc.createOffer());
  await waitFor('ICE gathering', () => (pc.iceGatheringState === 'complete' ? true : undefined), 5000, 10);
  return pc.localDescription!.sdp;
}

/** A sendonly publisher (A) and a recvonly answerer (B, as the gateway), connected. `audio`: A also offers audio B has no codec for (answered inactive). */
async function connectedPair({ audio = false } = {}): Promise<{ a: RTCPeerConnection; b: RTCPeerConnection; track: MediaStreamTrack }> {
  const a = peer();
  const b = new RTCPeerConnection({ ...loopback, codecs: { video: [h264()], audio: [] } });
  peers.push(b);
  const track = new MediaStreamTrack({ kind: 'video' });
  a.addTransceiver(track, { direction: 'sendonly' });
  if (audio) a.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
  const offer = await gathered(a);
  await b.setRemoteDescription({ type: 'offer', sdp: offer });
  for (const t of b.getTransceivers()) t.setDirection('recvonly');
  keepToConfiguredStun(b, []);
  await b.setLocalDescription(await b.createAnswer());
  await waitFor('B gathering', () => (b.iceGatheringState === 'complete' ? true : undefined), 5000, 10);
  await a.setRemoteDescription(b.localDescription!);
  await waitFor('connected', () => (a.connectionState === 'connected' && b.connectionState === 'connected' ? true : undefined), 10_000, 10);
  return { a, b, track };
}

/** Dummy H.264 RTP into A's track every 20 ms; B counts what arrives. */
function pump(track: MediaStreamTrack, b: RTCPeerConnection): { received: () => number; stop: () => void } {
  let received = 0;
  b.dtlsTransports[0].onRtp.subscribe(() => received++);
  let seq = 0;
  const timer = setInterval(() => {
    seq++;
    track.writeRtp(new RtpPacket(new RtpHeader({ payloadType: 96, sequenceNumber: seq & 0xffff, timestamp: (seq * 1800) >>> 0, ssrc: 1, marker: true }), Buffer.from([0x65, 0x88, 0x84, 0, seq & 0xff])));
  }, 20);
  return { received: () => received, stop: () => clearInterval(timer) };
}

/**
 * A restarts ICE on a new socket (its network changed); B answers the re-offer as the
 * gateway does (`patched`: restartForNewCredentials first) or as werift alone would.
 * `resumeA`: the test publisher's own fix for werift as the offerer.
 */
async function restart(a: RTCPeerConnection, b: RTCPeerConnection, patched: boolean, edit: (offer: string) => string = (o) => o, resumeA = true): Promise<string> {
  const conn = a.iceTransports[0].connection as unknown as { protocols: { close?: () => Promise<void> }[] };
  for (const p of conn.protocols) await p.close?.();
  conn.protocols = [];
  a.restartIce();
  const reOffer = edit(await gathered(a));
  if (patched) restartForNewCredentials(b, credentialsOf(sdpTransform.parse(reOffer))!);
  await b.setRemoteDescription({ type: 'offer', sdp: reOffer });
  keepToConfiguredStun(b, []);
  await b.setLocalDescription(await b.createAnswer());
  await waitFor('B gathering', () => (b.iceGatheringState === 'complete' ? true : undefined), 5000, 10);
  await a.setRemoteDescription(b.localDescription!);
  if (resumeA) void resumeIceChecks(a);
  return b.localDescription!.sdp;
}

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close().catch(() => undefined)));
});

describe('werift closes silently; close-notify.ts makes it heard', () => {
  it('without it, the remote DTLS stays "connected" after close() (werift still sends no close_notify)', async () => {
    // Fails once werift sends close_notify itself: then close-notify.ts can go.
    const { a, b } = await connectedPair();
    await b.close();
    await new Promise((r) => setTimeout(r, 1000));
    expect(a.dtlsTransports[0].state).toBe('connected');
  });

  it('with it, the remote DTLS goes "closed" at once (close_notify built from werift internals)', async () => {
    // Fails when werift's DtlsSocket internals change (announceClose then tells no transport).
    const { a, b } = await connectedPair();
    const sentAt = performance.now();
    expect(await announceClose(b, 'test')).toBe(1);
    await b.close();
    await waitFor('A\'s DTLS closed', () => (a.dtlsTransports[0].state === 'closed' ? true : undefined), 2000, 5);
    console.log(`[close-notify] werift publisher's DTLS closed ${Math.round(performance.now() - sentAt)} ms after announceClose`);
  });
});

describe('ICE restart: werift answers it (ice-restart.ts covers one case); as the offerer it needs a push', () => {
  installIceConnectWait();

  it('werift as the offerer does not check after a restart: no pair, no media (the test publisher resumes its checks)', async () => {
    // Fails once werift's connect() starts the checks after a restart itself: then the
    // test publisher's resumeIceChecks can go.
    const { a, b, track } = await connectedPair();
    const media = pump(track, b);
    await restart(a, b, true, undefined, false);
    const at = media.received();
    await new Promise((r) => setTimeout(r, 2000));
    media.stop();
    expect(a.iceTransports[0].connection.nominated).toBeUndefined();
    expect(media.received() - at).toBeLessThan(5);
  });

  it('as the answerer (the gateway), it reaches the new pair by the publisher\'s checks: media again within a second, same DTLS session', async () => {
    const { a, b, track } = await connectedPair();
    const dtls = b.dtlsTransports[0].dtls;
    const media = pump(track, b);
    const before = b.iceTransports[0].connection.nominated?.remoteAddr;
    const restartedAt = performance.now();
    await restart(a, b, true);
    const at = media.received();
    await waitFor('RTP over the new pair', () => (media.received() > at + 10 ? true : undefined), 3000, 10);
    console.log(`[ice-restart] werift-to-werift: RTP again ${Math.round(performance.now() - restartedAt)} ms after the restart began`);
    media.stop();
    expect(b.iceTransports[0].connection.nominated?.remoteAddr).not.toEqual(before);
    expect(b.dtlsTransports[0].dtls).toBe(dtls);
    expect(b.iceTransports[0].state).toMatch(/connected|completed/);
  });

  it('a re-offer with an a=inactive section is taken for renomination: B keeps its credentials unless restarted first', async () => {
    // Fails once werift restarts on such a re-offer itself: then restartForNewCredentials can go.
    const inactive = (o: string) => o.replace(/m=audio \d+/, 'm=audio 0').replace(/(m=audio[\s\S]*?)a=sendonly/, '$1a=inactive');
    for (const patched of [false, true]) {
      const { a, b } = await connectedPair({ audio: true });
      const ufrag = credentialsOf(sdpTransform.parse(b.localDescription!.sdp))?.ufrag;
      const answer = await restart(a, b, patched, inactive);
      expect(credentialsOf(sdpTransform.parse(answer))?.ufrag === ufrag, patched ? 'restarted' : 'kept').toBe(!patched);
    }
  });
});

describe('werift rejects bundle-only sections; bundle-only.ts takes them into the bundle', () => {
  /** A max-bundle offer, as webrtcbin and JSEP write it: the second section port 0 with a=bundle-only. */
  async function maxBundleOffer(): Promise<string> {
    const a = peer();
    a.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly' });
    a.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
    const sdp = sdpTransform.parse(await gathered(a));
    sdp.media[1].port = 0;
    sdp.media[1].bundleOnly = 'bundle-only';
    delete sdp.media[1].candidates;
    return sdpTransform.write(sdp);
  }
  async function answerOf(offer: string): Promise<sdpTransform.SessionDescription> {
    const b = peer();
    await b.setRemoteDescription({ type: 'offer', sdp: offer });
    for (const t of b.getTransceivers()) t.setDirection('recvonly');
    keepToConfiguredStun(b, []);
    await b.setLocalDescription(await b.createAnswer());
    return sdpTransform.parse(b.localDescription!.sdp);
  }

  it('as sent, werift answers the bundle-only section rejected (port 0, out of the group)', async () => {
    // Fails once werift accepts bundle-only sections itself: then the rewrite can go.
    const answer = await answerOf(await maxBundleOffer());
    expect(answer.media[1].port).toBe(0);
    expect(String(answer.groups?.[0].mids)).toBe(String(answer.media[0].mid));
  });

  it('rewritten, werift answers it in the bundle, receiving', async () => {
    const offer = sdpTransform.parse(await maxBundleOffer());
    expect(acceptBundleOnly(offer).accepted).toEqual([1]);
    const answer = await answerOf(sdpTransform.write(offer));
    expect(answer.media[1]).toMatchObject({ port: 9, direction: 'recvonly' });
    expect(String(answer.groups?.[0].mids).split(' ')).toHaveLength(2);
  });
});
