import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, useNACK, usePLI } from 'werift';
import WebSocket from 'ws';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { resumeIceChecks } from '../helpers/werift-publisher.js';

// The WebSocket signalling protocol at /ws, with a real werift peer: trickle ICE both ways,
// malformed messages, two publishers on one name, a closed socket ending its session.

interface Msg {
  type: string;
  [k: string]: unknown;
}

class Client {
  readonly messages: Msg[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => this.messages.push(JSON.parse(d.toString()) as Msg));
  }
  static async open(url: string): Promise<Client> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    return new Client(ws);
  }
  send(m: unknown): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }
  next(type: string, timeoutMs = 10_000): Promise<Msg> {
    return waitFor(`ws message ${type}`, () => {
      const i = this.messages.findIndex((m) => m.type === type);
      return i >= 0 ? this.messages.splice(i, 1)[0] : undefined;
    }, timeoutMs, 10);
  }
  close(): void {
    this.ws.close();
  }
}

function peer(): RTCPeerConnection {
  const pc = new RTCPeerConnection({
    iceServers: [], // never werift's default public STUN server
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    codecs: {
      video: [new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, payloadType: 102, rtcpFeedback: [useNACK(), usePLI()], parameters: 'packetization-mode=1;profile-level-id=42e01f' })],
    },
  });
  pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly' });
  return pc;
}

describe('WebSocket signalling', () => {
  let t: TestGateway;
  let ws: string;
  beforeAll(async () => {
    t = await startTestGateway({ hls: { auto: false } });
    ws = `${t.url.replace('http', 'ws')}/ws`;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('publishes with trickle ICE both ways and connects on loopback', async () => {
    const c = await Client.open(ws);
    const pc = peer();
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    // Trickle: the offer goes before gathering is done, candidates follow one by one.
    c.send({ type: 'publish', stream: 'ws1', sdp: offer.sdp });
    pc.onIceCandidate.subscribe((cand) => c.send({ type: 'candidate', candidate: cand ? { candidate: cand.candidate, sdpMid: cand.sdpMid, sdpMLineIndex: cand.sdpMLineIndex } : null }));
    const answer = await c.next('answer');
    expect(answer).toMatchObject({ stream: 'ws1', session: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp as string });
    const cand = await c.next('candidate');
    expect((cand.candidate as { candidate: string }).candidate).toMatch(/127\.0\.0\.1/);
    await pc.addIceCandidate(cand.candidate as { candidate: string });
    for (const m of c.messages.filter((x) => x.type === 'candidate')) if (m.candidate) await pc.addIceCandidate(m.candidate as { candidate: string });
    await waitFor('connected', () => (pc.connectionState === 'connected' ? true : undefined));
    expect((await c.next('state')).state).toBeDefined();
    const info = await waitFor('live', async () => {
      const s = (await (await fetch(`${t.url}/api/streams/ws1`)).json()) as { state: string; ice?: { local: { address: string } } };
      return s.state === 'live' ? s : undefined;
    });
    expect(info.ice?.local.address).toBe('127.0.0.1');
    // A candidate the gateway cannot use gets an error reply in our words; the session stays.
    c.send({ type: 'candidate', candidate: { candidate: 'candidate:garbage', sdpMid: '0', sdpMLineIndex: 0 } });
    expect(await c.next('error')).toEqual({ type: 'error', code: 'bad-message', message: 'candidate: not an ICE candidate the gateway can use' });
    expect(pc.connectionState).toBe('connected');
    // A second publisher on the same name is refused, on its own connection only.
    const c2 = await Client.open(ws);
    const pc2 = peer();
    await pc2.setLocalDescription(await pc2.createOffer());
    c2.send({ type: 'publish', stream: 'ws1', sdp: pc2.localDescription!.sdp });
    expect(await c2.next('error')).toMatchObject({ code: 'stream-busy' });
    c2.close();
    await pc2.close();
    // Closing the socket ends the session.
    c.close();
    await waitFor('stream gone', async () => ((await fetch(`${t.url}/api/streams/ws1`)).status === 404 ? true : undefined));
    await pc.close();
  });

  it('holds candidates that arrive while the offer is still being answered', async () => {
    const c = await Client.open(ws);
    const pc = peer();
    await pc.setLocalDescription(await pc.createOffer());
    await waitFor('gathered', () => (pc.iceGatheringState === 'complete' ? true : undefined));
    const sdp = pc.localDescription!.sdp;
    const candidates = sdp.split('\r\n').filter((l) => l.startsWith('a=candidate:')).map((l) => l.slice(2));
    // The offer without candidates, and every candidate sent right behind it, in one burst.
    c.send({ type: 'publish', stream: 'ws3', sdp: sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates').join('\r\n') });
    for (const candidate of candidates) c.send({ type: 'candidate', candidate: { candidate, sdpMid: '0', sdpMLineIndex: 0 } });
    c.send({ type: 'candidate', candidate: null });
    const answer = await c.next('answer');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp as string });
    const gatewayCandidate = await c.next('candidate');
    await pc.addIceCandidate(gatewayCandidate.candidate as { candidate: string });
    await waitFor('connected', () => (pc.connectionState === 'connected' ? true : undefined)).catch((e: Error) => {
      throw new Error(`${e.message}: client ice ${pc.iceConnectionState}, connection ${pc.connectionState}; messages ${JSON.stringify(c.messages).slice(0, 500)}`);
    });
    expect(c.messages.filter((m) => m.type === 'error')).toEqual([]);
    c.close();
    await pc.close();
  });

  it('restarts ICE in the same session from a new connection, which takes the session over', async () => {
    const c = await Client.open(ws);
    const pc = peer();
    await pc.setLocalDescription(await pc.createOffer());
    await waitFor('gathered', () => (pc.iceGatheringState === 'complete' ? true : undefined));
    c.send({ type: 'publish', stream: 'ws4', sdp: pc.localDescription!.sdp });
    const answer = await c.next('answer');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp as string });
    await waitFor('live', async () => ((await (await fetch(`${t.url}/api/streams/ws4`)).json()) as { state: string }).state === 'live' || undefined);
    // Without new credentials it is no restart; a stranger's connection without the session id gets nothing.
    c.send({ type: 'restart', sdp: pc.localDescription!.sdp });
    expect(await c.next('error')).toMatchObject({ code: 'not-a-restart' });
    const c2 = await Client.open(ws);
    c2.send({ type: 'restart', stream: 'ws4', session: 'not-the-session', sdp: pc.localDescription!.sdp });
    expect(await c2.next('error')).toMatchObject({ code: 'not-publishing' });
    // The real restart, on the new connection (the old one "went down with the network").
    pc.restartIce();
    await pc.setLocalDescription(await pc.createOffer());
    await waitFor('gathered', () => (pc.iceGatheringState === 'complete' ? true : undefined));
    const extra = pc.localDescription!.sdp.replace(/a=group:BUNDLE (\S+)/, 'a=group:BUNDLE $1 9') + 'm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:9\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n';
    c2.send({ type: 'restart', stream: 'ws4', session: answer.session, sdp: extra });
    expect(await c2.next('error')).toMatchObject({ code: 'sections-changed' });
    c2.send({ type: 'restart', stream: 'ws4', session: answer.session, sdp: pc.localDescription!.sdp });
    const again = await c2.next('answer');
    expect(again).toMatchObject({ stream: 'ws4', session: answer.session });
    expect(again.sdp).not.toMatch(new RegExp(`a=ice-ufrag:${/a=ice-ufrag:(\S+)/.exec(answer.sdp as string)![1]}\r`));
    await pc.setRemoteDescription({ type: 'answer', sdp: again.sdp as string });
    const candidate = await c2.next('candidate');
    await pc.addIceCandidate(candidate.candidate as { candidate: string });
    void resumeIceChecks(pc);
    const restarted = await waitFor('the restart counted, over a pair again', async () => {
      const s = (await (await fetch(`${t.url}/api/streams/ws4`)).json()) as { state: string; session: string; iceRestarts: number };
      return s.iceRestarts === 1 && pc.iceTransports[0].connection.nominated ? s : undefined;
    });
    expect(restarted).toMatchObject({ state: 'live', session: answer.session });
    // The old connection closing no longer ends the session; the new one's does.
    c.close();
    await new Promise((r) => setTimeout(r, 300));
    expect((await fetch(`${t.url}/api/streams/ws4`)).status).toBe(200);
    c2.close();
    await waitFor('stream gone', async () => ((await fetch(`${t.url}/api/streams/ws4`)).status === 404 ? true : undefined));
    await pc.close();
  });

  it('answers malformed messages with an error and keeps the connection', async () => {
    const c = await Client.open(ws);
    c.send('not json');
    expect(await c.next('error')).toMatchObject({ code: 'bad-message', message: 'message is not JSON' });
    c.send({ type: 'dance' });
    expect(await c.next('error')).toMatchObject({ code: 'bad-message' });
    c.send({ type: 'publish', stream: 'x' });
    expect((await c.next('error')).message).toMatch(/sdp/);
    c.send({ type: 'publish', stream: 'bad name', sdp: 'v=0' });
    expect(await c.next('error')).toMatchObject({ code: 'bad-stream-name' });
    c.send({ type: 'publish', stream: 'ok', sdp: 'hello' });
    expect(await c.next('error')).toMatchObject({ code: 'bad-sdp' });
    c.send({ type: 'candidate', candidate: null });
    expect(await c.next('error')).toMatchObject({ code: 'not-publishing' });
    c.send({ type: 'ping' });
    expect(await c.next('pong')).toEqual({ type: 'pong' });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.close();
  });

  it('feeds events and stream stats to a subscriber', async () => {
    const sub = await Client.open(ws);
    sub.send({ type: 'subscribe' });
    expect(Array.isArray((await sub.next('streams')).streams)).toBe(true);
    const c = await Client.open(ws);
    const pc = peer();
    await pc.setLocalDescription(await pc.createOffer());
    await waitFor('gathered', () => (pc.iceGatheringState === 'complete' ? true : undefined));
    c.send({ type: 'publish', stream: 'ws2', sdp: pc.localDescription!.sdp });
    const answer = await c.next('answer');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp as string });
    const started = await sub.next('event');
    expect(started.event).toMatchObject({ type: 'stream.started', stream: 'ws2' });
    // What the publisher says it sends: from its own connection, or from another one that
    // names the session (a WHIP publisher); a wrong session or a bad figure is refused.
    const stats = { frameWidth: 1280, frameHeight: 720, framesPerSecond: 30, targetKbps: 2500, qualityLimitationReason: 'bandwidth' };
    const other = await Client.open(ws);
    other.send({ type: 'sender-stats', stream: 'ws2', session: 'not-the-session', stats });
    expect(await other.next('error')).toMatchObject({ code: 'not-publishing' });
    other.send({ type: 'sender-stats', stream: 'ws2', session: answer.session, stats: { ...stats, frameWidth: -1 } });
    expect(await other.next('error')).toMatchObject({ code: 'bad-message' });
    other.send({ type: 'sender-stats', stream: 'ws2', session: answer.session, stats });
    const reported = (await waitFor('sender report', async () => {
      const streams = (await sub.next('streams')).streams as { name: string; sender?: unknown }[];
      return streams.find((s) => s.name === 'ws2' && s.sender);
    })) as { sender: unknown };
    expect(reported.sender).toMatchObject(stats);
    other.close();
    c.send({ type: 'unpublish' });
    expect(await c.next('unpublished')).toMatchObject({ stream: 'ws2' });
    expect((await sub.next('event')).event).toMatchObject({ type: 'stream.stopped', stream: 'ws2' });
    sub.close();
    c.close();
    await pc.close();
  });
});
