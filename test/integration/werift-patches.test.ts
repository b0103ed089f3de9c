import * as sdpTransform from 'sdp-transform';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, usePLI, useNACK } from 'werift';
import { acceptBundleOnly } from '../../src/sdp/bundle-only.js';
import { announceClose } from '../../src/webrtc/close-notify.js';
import { keepToConfiguredStun } from '../../src/webrtc/ice-options.js';
import { waitFor } from '../helpers/gateway.js';

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
  await pc.setLocalDescription(pc.localDescription?.type === 'offer' ? pc.localDescription : await pc.createOffer());
  await waitFor('ICE gathering', () => (pc.iceGatheringState === 'complete' ? true : undefined), 5000, 10);
  return pc.localDescription!.sdp;
}

/** A sendonly publisher (A) and a recvonly answerer (B, as the gateway), connected. */
async function connectedPair(): Promise<{ a: RTCPeerConnection; b: RTCPeerConnection }> {
  const a = peer();
  const b = peer();
  a.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly' });
  const offer = await gathered(a);
  await b.setRemoteDescription({ type: 'offer', sdp: offer });
  for (const t of b.getTransceivers()) t.setDirection('recvonly');
  keepToConfiguredStun(b, []);
  await b.setLocalDescription(await b.createAnswer());
  await waitFor('B gathering', () => (b.iceGatheringState === 'complete' ? true : undefined), 5000, 10);
  await a.setRemoteDescription(b.localDescription!);
  await waitFor('connected', () => (a.connectionState === 'connected' && b.connectionState === 'connected' ? true : undefined), 10_000, 10);
  return { a, b };
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
