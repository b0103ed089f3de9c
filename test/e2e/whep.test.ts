import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, PublisherPage, startPageServer, type PageServer } from '../helpers/chromium.js';
import { waitLive } from '../helpers/e2e-api.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { createShapedLink, netnsSupport } from '../helpers/shaped-link.js';
import { whepPageShim } from '../helpers/whep-page-shim.js';
import { WhepViewer, type ViewerStats } from '../helpers/whep-viewer.js';

// WHEP playback (real-time WebRTC viewers) with real Chromium on both ends: a Chromium
// publisher (the built-in page's way, fake camera and microphone) and Chromium WHEP
// players (a plain RTCPeerConnection with recvonly transceivers, test/helpers/whep-viewer.ts),
// each reading what its own getStats() says it decodes. One gateway and one browser are
// shared; the lossy case has its own (a viewer behind a shaped link in network namespaces).
// Figures (glass to glass, time to first picture, CPU per viewer) are measured in the
// bench; these hold what a viewer notices.

interface ViewerJson {
  id: string;
  state: string;
  tracks: { kind: string; codec: string }[];
  nacked: number;
  retransmitted: number;
  keepingUp: boolean;
  lossPercent?: number;
}

async function viewersOf(base: string, name: string): Promise<ViewerJson[]> {
  const res = await fetch(`${base}/api/streams/${name}`);
  return res.ok ? ((await res.json()) as { viewers: ViewerJson[] }).viewers : [];
}

/** Waits until the viewer has decoded more than `frames` pictures and received a second of sound. */
function decoding(v: WhepViewer, frames = 30, timeoutMs = 15_000): Promise<ViewerStats> {
  let last: ViewerStats | undefined;
  return waitFor('pictures decoded and sound received', async () => {
    last = await v.stats();
    return (last.framesDecoded ?? 0) > frames && (last.totalSamplesReceived ?? 0) > 48_000 ? last : undefined;
  }, timeoutMs, 200).catch((e: Error) => {
    throw new Error(`${e.message}; viewer saw ${JSON.stringify(last)}`);
  });
}

const unsupported = await netnsSupport();

describe('WHEP playback', () => {
  let t: TestGateway;
  let site: PageServer;
  let browser: Browser;
  let pub: PublisherPage;

  beforeAll(async () => {
    [t, site, browser] = await Promise.all([startTestGateway({ whep: { maxViewersPerStream: 6 } }), startPageServer(), launchChromium()]);
    pub = await PublisherPage.open(browser, site.url);
    const res = await pub.publish(`${t.url}/whip/whep1`);
    expect(res.status, res.body).toBe(201);
    await pub.connected();
    await waitLive(t.url, 'whep1');
  }, 60_000);

  afterAll(async () => {
    await pub?.stop().catch(() => undefined);
    await browser?.close();
    await site?.close();
    await t?.close();
  });

  it('Chromium watches a Chromium publisher: H.264 and Opus as sent, pictures decoded, sound arrives, the first picture within a second of the 201', async () => {
    const v = await WhepViewer.open(browser);
    try {
      const res = await v.watch(`${t.url}/whep/whep1`);
      expect(res.status, res.body).toBe(201);
      expect(res.location).toMatch(new RegExp(`^${t.url}/whep/whep1/[0-9a-f-]{36}$`));
      expect(res.etag).toMatch(/^"[0-9a-f-]{36}\.0"$/);
      // Media stays on loopback: the gateway offers only 127.0.0.1.
      const candidates = res.body.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
      expect(candidates.length).toBeGreaterThan(0);
      for (const c of candidates) expect(c.split(' ')[4]).toBe('127.0.0.1');
      for (const c of res.offer.split('\r\n').filter((l) => l.startsWith('a=candidate:'))) expect(c.split(' ')[4]).toBe('127.0.0.1');
      expect(res.body).toMatch(/^a=sendonly/m);
      const s = await decoding(v);
      expect(s.codecs).toEqual(expect.arrayContaining(['video/H264', 'audio/opus']));
      expect(s.frameWidth).toBeGreaterThan(0);
      // The stream had been live for seconds: the viewer starts at the cached keyframe at once.
      expect(s.firstFrameAt! - res.answeredAt, 'first picture after the 201 (ms)').toBeLessThan(1000);
      const [viewer] = await viewersOf(t.url, 'whep1');
      expect(viewer).toMatchObject({ state: 'connected', tracks: [{ kind: 'video', codec: 'H264' }, { kind: 'audio', codec: 'opus' }], keepingUp: true });
    } finally {
      await v.stop();
      await v.close();
    }
    await waitFor('the viewer gone from the API', async () => ((await viewersOf(t.url, 'whep1')).length === 0 ? true : undefined));
  });

  it('six viewers watch one stream and all decode; a seventh gets 503; a DELETE drops one and the count follows', async () => {
    const viewers = await Promise.all(Array.from({ length: 6 }, () => WhepViewer.open(browser)));
    try {
      const answers = await Promise.all(viewers.map((v) => v.watch(`${t.url}/whep/whep1`)));
      for (const a of answers) expect(a.status, a.body).toBe(201);
      const stats = await Promise.all(viewers.map((v) => decoding(v)));
      for (const s of stats) expect(s.framesDecoded).toBeGreaterThan(30);
      expect((await viewersOf(t.url, 'whep1')).filter((x) => x.state === 'connected')).toHaveLength(6);
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      expect(metrics).toMatch(/^gateway_whep_viewers\{stream="whep1"\} 6$/m);

      const seventh = await WhepViewer.open(browser);
      const refused = await seventh.watch(`${t.url}/whep/whep1`);
      await seventh.close();
      expect(refused.status).toBe(503);
      expect(refused.retryAfter).toBe('5');
      expect(refused.body).toMatch(/maxViewersPerStream/);

      expect(await viewers[0].stop()).toBe(200);
      await waitFor('five viewers left', async () => ((await viewersOf(t.url, 'whep1')).length === 5 ? true : undefined), 5000);
      expect((await fetch(answers[0].location!, { method: 'DELETE' })).status).toBe(404);
      // The others go on decoding (at 30 fps; ten pictures in two seconds allows for a busy machine).
      const before = await Promise.all(viewers.slice(1).map((v) => v.stats()));
      await new Promise((r) => setTimeout(r, 2000));
      const after = await Promise.all(viewers.slice(1).map((v) => v.stats()));
      after.forEach((s, i) => expect(s.framesDecoded! - before[i].framesDecoded!, JSON.stringify({ before: before[i], after: s })).toBeGreaterThan(10));
    } finally {
      await Promise.all(viewers.map(async (v) => (await v.stop().catch(() => 0), await v.close())));
    }
  });

  it('PATCH restarts ICE in the same session: pictures go on, the ETag names the new ICE session, a stale one gets 412', async () => {
    const v = await WhepViewer.open(browser);
    try {
      const res = await v.watch(`${t.url}/whep/whep1`);
      expect(res.status, res.body).toBe(201);
      await decoding(v, 10);
      const restarted = await v.restart();
      expect(restarted.status, restarted.body).toBe(200);
      expect(restarted.body).toMatch(/^a=ice-ufrag:/m);
      expect(restarted.body).toMatch(/^a=candidate:/m);
      expect(restarted.etag).toBe(res.etag!.replace(/\.0"$/, '.1"'));
      const before = await v.stats();
      await waitFor('pictures after the restart', async () => ((await v.stats()).framesDecoded! > before.framesDecoded! + 30 ? true : undefined), 10_000, 250);
      const [viewer] = (await viewersOf(t.url, 'whep1')).filter((x) => res.location!.endsWith(x.id));
      expect(viewer.state).toBe('connected');
      const stale = await fetch(res.location!, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': res.etag! }, body: 'a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n' });
      expect(stale.status).toBe(412);
      expect(stale.headers.get('etag')).toBe(restarted.etag);
      const unknown = await fetch(`${t.url}/whep/whep1/no-such-viewer`, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '*' }, body: 'a=end-of-candidates\r\n' });
      expect(unknown.status).toBe(404);
    } finally {
      await v.stop();
      await v.close();
    }
  });

  it('the watch page plays in real time and shows the delay; the dashboard lists the viewer; where WebRTC does not connect, the page plays HLS by itself', async () => {
    const page = await browser.newPage();
    const dash = await browser.newPage();
    try {
      await page.addInitScript(whepPageShim());
      await page.goto(`${t.url}/watch/whep1?mode=webrtc`);
      await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'playing in real time (WebRTC)', undefined, { timeout: 15_000 }).catch(async (e: Error) => {
        throw new Error(`${e.message}; the page says "${await page.textContent('#status')}"`);
      });
      await page.waitForFunction(() => /^\d+ ms$/.test(document.querySelector('#delay')?.textContent ?? ''), undefined, { timeout: 10_000 });
      const delay = Number((await page.textContent('#delay'))!.split(' ')[0]);
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThan(2000);
      await dash.goto(`${t.url}/`);
      await dash.waitForFunction(() => document.querySelector('article[aria-label="stream whep1"] caption')?.textContent === '1 real-time (WHEP) viewer', undefined, { timeout: 10_000 });
    } finally {
      await page.close();
      await dash.close();
    }
    const blocked = await browser.newPage();
    try {
      await blocked.addInitScript(whepPageShim({ breakIce: true }));
      await blocked.goto(`${t.url}/watch/whep1?mode=webrtc`);
      await blocked.waitForFunction(() => /^playing HLS \(real time did not work here: not connected after 5 s\)$/.test(document.querySelector('#status')?.textContent ?? ''), undefined, { timeout: 25_000 }).catch(async (e: Error) => {
        throw new Error(`${e.message}; the page says "${await blocked.textContent('#status')}"`);
      });
      expect(await blocked.evaluate(() => (document.querySelector('video') as HTMLVideoElement).currentTime)).toBeGreaterThan(0);
    } finally {
      await blocked.close();
    }
  });

  it("a VP8 publisher's viewers get its VP8 as sent, or, offering only H.264, the stream's transcoded H.264", async () => {
    const p = await PublisherPage.open(browser, site.url);
    const [vp8, h264] = await Promise.all([WhepViewer.open(browser), WhepViewer.open(browser)]);
    try {
      const res = await p.publish(`${t.url}/whip/vp8w`, { onlyVideo: ['VP8'] });
      expect(res.status, res.body).toBe(201);
      await p.connected();
      await waitLive(t.url, 'vp8w');
      // The transcoded H.264 runs for HLS (hls.auto): its first pictures come a moment later.
      await waitFor('the transcoded H.264 flowing', async () => {
        const info = await (await fetch(`${t.url}/api/streams/vp8w`)).json() as { tracks: { codec: string; transcoded?: boolean; encoder?: { state: string } }[] };
        return info.tracks.some((x) => x.transcoded && x.encoder?.state === 'running') ? true : undefined;
      }, 20_000, 250);
      expect((await vp8.watch(`${t.url}/whep/vp8w`)).status).toBe(201);
      expect((await h264.watch(`${t.url}/whep/vp8w`, { onlyVideo: ['H264'] })).status).toBe(201);
      const [a, b] = await Promise.all([decoding(vp8), decoding(h264, 30, 20_000)]);
      expect(a.codecs).toContain('video/VP8');
      expect(b.codecs).toContain('video/H264');
      const viewers = await viewersOf(t.url, 'vp8w');
      expect(viewers.map((x) => x.tracks.find((tr) => tr.kind === 'video')?.codec).sort()).toEqual(['H264', 'VP8']);
      // The publisher leaves: its viewers are told at once (RTCP BYE, DTLS close_notify), not left waiting for ICE to time out.
      // (The DELETE itself is answered once the outputs have finished their files.)
      const left = Date.now();
      const stopped = p.stop();
      let seen: unknown;
      await waitFor('the viewers told the stream ended', async () => {
        const all = await Promise.all([vp8, h264].map((v) => v.stats()));
        seen = all.map((x) => [x.state, x.dtlsState]);
        return all.every((x) => x.dtlsState === 'closed' || x.state !== 'connected') ? true : undefined;
      }, 5000, 100).catch((e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(seen)}`);
      });
      const toldMs = Date.now() - left;
      expect(await stopped).toBe(200);
      expect(toldMs).toBeLessThan(2000);
    } finally {
      await Promise.all([vp8, h264].map(async (v) => (await v.stop().catch(() => 0), await v.close())));
      await p.stop().catch(() => 0);
      await p.close();
    }
  });

  it('refuses what it cannot serve: an unknown stream (404), a GET (405), another content type (415), an offer that receives nothing (400)', async () => {
    const v = await WhepViewer.open(browser);
    try {
      const unknown = await v.watch(`${t.url}/whep/nobody`);
      expect(unknown.status).toBe(404);
      expect(unknown.body).toMatch(/no stream named nobody/);
    } finally {
      await v.close();
    }
    expect((await fetch(`${t.url}/whep/whep1`)).status).toBe(405);
    const wrongType = await fetch(`${t.url}/whep/whep1`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'v=0' });
    expect(wrongType.status).toBe(415);
    const pubOffer = await pub.makeOffer(); // sendonly sections: nothing to receive
    const sendOnly = await fetch(`${t.url}/whep/whep1`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pubOffer });
    expect(sendOnly.status).toBe(400);
    expect(await sendOnly.text()).toMatch(/receives no audio or video/);
    const preflight = await fetch(`${t.url}/whep/whep1`, { method: 'OPTIONS', headers: { Origin: 'http://localhost:9', 'Access-Control-Request-Method': 'POST' } });
    expect(preflight.headers.get('accept-post')).toBe('application/sdp');
  });

  it('needs the read right on the stream, as HLS does', async () => {
    const authed = await startTestGateway({
      auth: {
        tokens: [
          { token: 'reader-token-whep-1234', permissions: [{ action: 'read', streams: 'open-*' }] },
          { token: 'publisher-token-whep-1234', permissions: [{ action: 'publish' }] },
        ],
      },
      http: { corsOrigins: ['http://localhost:9'] },
    });
    const v = await WhepViewer.open(browser);
    try {
      expect((await v.watch(`${authed.url}/whep/open-1`)).status).toBe(401);
      expect((await v.watch(`${authed.url}/whep/open-1`, { token: 'publisher-token-whep-1234' })).status).toBe(403);
      expect((await v.watch(`${authed.url}/whep/closed-1`, { token: 'reader-token-whep-1234' })).status).toBe(403);
      // Allowed: on to the stream, which is not there.
      expect((await v.watch(`${authed.url}/whep/open-1`, { token: 'reader-token-whep-1234' })).status).toBe(404);
    } finally {
      await v.close();
      await authed.close();
    }
  });

  it.skipIf(unsupported !== undefined)(`a viewer behind a lossy link (3 % of its packets dropped) recovers through NACK, and another viewer of the stream sees nothing of it${unsupported ? ` (skipped: ${unsupported})` : ''}`, async () => {
    const link = await createShapedLink({ rateKbit: 20_000, downLossPercent: 0 });
    let gw: TestGateway | undefined;
    let inside: Browser | undefined;
    try {
      // The lab link's address is not loopback, but only the test's own namespace reaches it: run open knowingly.
      gw = await startTestGateway({ http: { host: link.gatewayAddress }, ice: { addresses: [link.gatewayAddress] }, auth: { mode: 'none' } });
      const p = await PublisherPage.open(browser, site.url);
      const res = await p.publish(`${gw.url}/whip/lossy1`, { candidateAddress: link.gatewayAddress });
      expect(res.status, res.body).toBe(201);
      await p.connected();
      await waitLive(gw.url, 'lossy1');
      inside = await link.launchChromium();
      const v = await WhepViewer.open(inside);
      const w = await v.watch(`${gw.url}/whep/lossy1`, { keepOwnCandidates: true });
      expect(w.status, w.body).toBe(201);
      // A second viewer on the gateway's own machine, whose link is clean.
      const clean = await WhepViewer.open(browser);
      expect((await clean.watch(`${gw.url}/whep/lossy1`)).status).toBe(201);
      await Promise.all([decoding(v), decoding(clean)]);
      await link.shape({ rateKbit: 20_000, downLossPercent: 3 });
      const [before, cleanBefore] = await Promise.all([v.stats(), clean.stats()]);
      const t0 = Date.now();
      // Until the link has dropped 30 packets (the publisher's bitrate depends on the machine's load), at least 5 s.
      await waitFor('30 packets dropped', async () => (Date.now() - t0 > 5000 && (await link.dropped()) >= 30 ? true : undefined), 30_000, 500);
      const [after, cleanAfter] = await Promise.all([v.stats(), clean.stats()]);
      const seconds = (Date.now() - t0) / 1000;
      const dropped = await link.dropped();
      const viewers = await viewersOf(gw.url, 'lossy1');
      const viewer = viewers.find((x) => w.location!.endsWith(x.id))!;
      const why = JSON.stringify({ seconds, dropped, before, after, cleanBefore, cleanAfter, viewers });
      expect(after.nackCount! - before.nackCount!, why).toBeGreaterThan(0);
      expect(viewer.nacked, why).toBeGreaterThan(0);
      expect(viewer.retransmitted, why).toBeGreaterThan(0);
      // What was dropped came again: few video packets stay lost, pictures keep coming.
      expect(after.videoPacketsLost! - before.videoPacketsLost!, why).toBeLessThan(dropped / 4);
      expect(after.framesDecoded! - before.framesDecoded!, why).toBeGreaterThan(seconds * 10);
      // The clean viewer lost nothing and went on at the stream's rate.
      expect(cleanAfter.videoPacketsLost! - cleanBefore.videoPacketsLost!, why).toBe(0);
      expect(cleanAfter.framesDecoded! - cleanBefore.framesDecoded!, why).toBeGreaterThan(seconds * 10);
      await clean.stop().catch(() => 0);
      await clean.close();
      await v.stop().catch(() => 0);
      await p.stop().catch(() => 0);
      await p.close();
    } finally {
      await inside?.close();
      await gw?.close();
      await link.destroy();
    }
  });
});
