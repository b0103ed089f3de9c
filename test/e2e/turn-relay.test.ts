import type { Browser } from 'playwright-core';
import { RTCPeerConnection } from 'werift';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentsOf } from '../helpers/hls-media.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { launchChromium } from '../helpers/chromium.js';
import { coturnAvailable, startCoturn, type Coturn } from '../helpers/coturn.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

// TURN relay with a real coturn on loopback: Chromium is forced to relay
// (iceTransportPolicy "relay", from the Publish page's ?relay), takes its ICE servers and
// time-limited credentials from the gateway, and HLS still comes out.

describe.skipIf(!coturnAvailable)('TURN relay (needs coturn: apt-get install coturn)', () => {
  let turn: Coturn;
  let t: TestGateway;
  let browser: Browser;

  beforeAll(async () => {
    turn = await startCoturn(34780 + (process.pid % 100) * 2);
    t = await startTestGateway({ ice: { turnUrls: [`turn:127.0.0.1:${turn.port}?transport=udp`], turnSecret: turn.secret } });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await turn?.stop();
  });

  it('advertises the TURN server with REST-API credentials in WHIP Link headers and to pages', async () => {
    const servers = (await (await fetch(`${t.url}/api/ice-servers`)).json()) as { urls: string[]; username: string; credential: string }[];
    expect(servers[0].urls).toEqual([`turn:127.0.0.1:${turn.port}?transport=udp`]);
    const [expiry] = servers[0].username.split(':');
    expect(Number(expiry)).toBeGreaterThan(Date.now() / 1000 + 3600);
    const pc = new RTCPeerConnection({ iceUseIpv4: false, iceUseIpv6: false, iceAdditionalHostAddresses: ['127.0.0.1'], iceInterfaceAddresses: { udp4: '127.0.0.1' } });
    pc.addTransceiver('audio', { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(`${t.url}/whip/linkcheck`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription!.sdp });
    expect(res.status).toBe(201);
    expect(res.headers.get('link')).toMatch(new RegExp(`^<turn:127\\.0\\.0\\.1:${turn.port}\\?transport=udp>; rel="ice-server"; username="\\d+:whip-linkcheck"; credential="[A-Za-z0-9+/=]+"; credential-type="password"$`));
    await fetch(new URL(res.headers.get('location')!, t.url), { method: 'DELETE' });
    await pc.close();
  });

  it('publishes through the relay from Chromium and produces HLS', async () => {
    const page = await browser.newPage();
    await page.goto(`${t.url.replace('127.0.0.1', 'localhost')}/publish/relay1?relay`);
    await page.getByRole('button', { name: 'Start publishing' }).click();
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 30_000 });
    const info = await waitFor('live', async () => {
      const s = (await (await fetch(`${t.url}/api/streams/relay1`)).json()) as { state: string; ice?: { remote: { type: string; address: string; port: number } } };
      return s.state === 'live' && s.ice ? s : undefined;
    });
    // The media comes from coturn's relay ports (the gateway may have learnt that address
    // as peer-reflexive, when the check beat the trickled relay candidate).
    expect(['relay', 'prflx']).toContain(info.ice?.remote.type);
    expect(info.ice?.remote.address).toBe('127.0.0.1');
    expect(info.ice!.remote.port).toBeGreaterThanOrEqual(turn.port + 10);
    expect(info.ice!.remote.port).toBeLessThanOrEqual(turn.port + 200);
    await waitFor('HLS segments', async () => (segmentsOf(await (await fetch(`${t.url}/hls/relay1/index.m3u8`)).text()).length >= 2 ? true : undefined), 30_000);
    const probe = await ffprobe(`${t.url}/hls/relay1/index.m3u8`);
    expect(probe.streams.find((s) => s.codec_type === 'video')?.codec_name).toBe('h264');
    await page.getByRole('button', { name: 'Stop' }).click();
  });
});
