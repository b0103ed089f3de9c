import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, PublisherPage, startPageServer, type PageServer } from '../helpers/chromium.js';
import { waitLive } from '../helpers/e2e-api.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { WhepViewer } from '../helpers/whep-viewer.js';

describe('WHEP playback', () => {
  let t: TestGateway;
  let site: PageServer;
  let browser: Browser;
  let pub: PublisherPage;

  beforeAll(async () => {
    [t, site, browser] = await Promise.all([startTestGateway(), startPageServer(), launchChromium()]);
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

  it('Chromium watches a Chromium publisher: frames decoded, audio arrives', async () => {
    const v = await WhepViewer.open(browser);
    const res = await v.watch(`${t.url}/whep/whep1`);
    expect(res.status, res.body).toBe(201);
    console.log(res.body);
    const s = await waitFor('frames decoded', async () => {
      const s = await v.stats();
      return (s.framesDecoded ?? 0) > 30 && (s.totalSamplesReceived ?? 0) > 48000 ? s : undefined;
    }, 15_000, 250).catch(async (e) => { console.log(await v.stats()); throw e; });
    console.log(s, s.firstFrameAt! - res.answeredAt);
    const info = await (await fetch(`${t.url}/api/streams/whep1`)).json();
    console.log(JSON.stringify(info.viewers));
    await v.stop();
    await v.close();
  });
});
