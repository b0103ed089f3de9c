import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, loopbackCandidateLine, loopbackOnly } from '../helpers/chromium.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher } from '../helpers/werift-publisher.js';

// The built-in pages in real headless Chromium: publish from the Publish page with the fake
// camera, see the stream on the Dashboard, start and stop a recording from its buttons,
// watch on the Watch page, find the recording listed. Screenshots of the three pages are
// kept in test-artifacts/pages/ (CI artifacts).
//
// Media stays on loopback: the Publish page trickles its candidates over /ws, and the test
// rewrites Chromium's one wildcard-bound UDP candidate to 127.0.0.1 on the way (see
// test/helpers/chromium.ts); the selected pair is checked through the API.

const SHOTS = path.resolve('test-artifacts', 'pages');

describe('built-in pages', () => {
  let t: TestGateway;
  let browser: Browser;
  let context: BrowserContext;
  let base: string;

  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    t = await startTestGateway();
    base = t.url.replace('127.0.0.1', 'localhost'); // a secure context for getUserMedia
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await t?.close();
  });

  it('publishes, is seen on the dashboard, records from a button, plays on the watch page', async () => {
    const publish = await context.newPage();
    await loopbackOnly(publish);
    publish.on('console', (m) => process.env.DEBUG_PAGES && console.log('publish page:', m.text()));
    await publish.goto(`${base}/publish/page1`);
    await publish.getByRole('button', { name: 'Start publishing' }).click();
    await publish.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 20_000 }).catch(async (e) => {
      throw new Error(`${(e as Error).message}; state=${await publish.textContent('#state')} message=${await publish.textContent('#message')}`);
    });
    await publish.waitForFunction(() => document.getElementById('codec')?.textContent === 'H264' && /kbit/.test(document.getElementById('bitrate')?.textContent ?? ''), undefined, { timeout: 15_000 });
    const info = await waitFor('live on loopback', async () => {
      const s = (await (await fetch(`${t.url}/api/streams/page1`)).json()) as { state: string; ice?: { local: { address: string }; remote: { address: string } }; tracks: { kind: string; codec: string }[] };
      return s.state === 'live' && s.ice ? s : undefined;
    });
    expect(info.ice).toMatchObject({ local: { address: '127.0.0.1' }, remote: { address: '127.0.0.1' } });
    expect(info.tracks.map((x) => `${x.kind}:${x.codec}`).sort()).toEqual(['audio:opus', 'video:H264']);
    await expect.poll(() => publish.textContent('#audioCodec'), { timeout: 10_000 }).toBe('opus');
    // What the browser really sends, and what limits it, from its own getStats().
    await expect.poll(() => publish.textContent('#target'), { timeout: 10_000 }).toMatch(/bit\/s/);
    await expect.poll(() => publish.textContent('#available')).toMatch(/bit\/s/);
    await expect.poll(() => publish.textContent('#limited')).toMatch(/^(nothing|bandwidth|cpu|other)$/);
    await publish.screenshot({ path: path.join(SHOTS, 'publish.png') });
    // The page reports the same figures to the gateway (API and dashboard).
    const sender = await waitFor('the browser\'s report', async () => ((await (await fetch(`${t.url}/api/streams/page1`)).json()) as { sender?: { frameWidth?: number; targetKbps?: number } }).sender);
    expect(sender.frameWidth).toBeGreaterThan(0);
    expect(sender.targetKbps).toBeGreaterThan(0);

    const dashboard = await context.newPage();
    await dashboard.goto(`${base}/`);
    const card = dashboard.getByRole('article', { name: 'stream page1' });
    await card.waitFor({ timeout: 10_000 });
    await expect.poll(() => card.textContent(), { timeout: 15_000 }).toMatch(/H264 \d+×\d+ \d+ fps/);
    await expect.poll(() => card.getByLabel('what the publisher sends').textContent(), { timeout: 15_000 }).toMatch(/Browser sends \d+×\d+ at \d+ fps/);
    await card.getByRole('button', { name: 'Start recording' }).click();
    await expect.poll(async () => (await card.locator('tr', { hasText: 'record' }).textContent()) ?? '', { timeout: 15_000 }).toContain('running');

    const watch = await context.newPage();
    await watch.goto(`${base}/watch/page1`);
    const played = await watch.waitForFunction(
      () => {
        const v = document.querySelector('video') as HTMLVideoElement;
        const w = window as unknown as { firstTime?: number };
        if (!v || v.videoWidth === 0 || v.currentTime === 0) return false;
        w.firstTime ??= v.currentTime;
        return v.currentTime > w.firstTime + 1 ? { width: v.videoWidth, time: v.currentTime } : false;
      },
      undefined,
      { timeout: 30_000, polling: 250 },
    );
    expect(((await played.jsonValue()) as { width: number }).width).toBeGreaterThan(0);
    await expect.poll(() => watch.textContent('#status')).toBe('playing');
    await watch.screenshot({ path: path.join(SHOTS, 'watch.png') });

    await dashboard.bringToFront();
    await card.getByRole('button', { name: 'stop record of page1' }).click();
    const row = dashboard.locator('#recordings tbody tr', { hasText: 'page1' });
    await row.first().waitFor({ timeout: 15_000 });
    await expect.poll(() => row.first().textContent(), { timeout: 15_000 }).toMatch(/\d+:\d\d/);
    await dashboard.screenshot({ path: path.join(SHOTS, 'dashboard.png'), fullPage: true });

    await publish.bringToFront();
    await publish.getByRole('button', { name: 'Stop' }).click();
    await waitFor('stream gone', async () => ((await fetch(`${t.url}/api/streams/page1`)).status === 404 ? true : undefined));
  });

  it('watch page waits for the publisher and resumes when it comes back', async () => {
    const watch = await context.newPage();
    await watch.goto(`${base}/watch/ret1`);
    await expect.poll(() => watch.textContent('#status')).toMatch(/waiting for the publisher/);
    const playingFrom = async () => {
      const start = await watch.evaluate(() => (document.querySelector('video') as HTMLVideoElement).currentTime);
      await watch.waitForFunction((t0) => {
        const v = document.querySelector('video') as HTMLVideoElement;
        return v.videoWidth > 0 && v.currentTime > t0 + 1 && !v.paused;
      }, start, { timeout: 30_000, polling: 250 });
    };
    let pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/ret1`, width: 320, height: 180, gop: 30 });
    await playingFrom();
    await pub.stop();
    await expect.poll(() => watch.textContent('#status'), { timeout: 20_000 }).toMatch(/waiting|ended|interrupted|reconnecting/);
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/ret1`, width: 320, height: 180, gop: 30 });
    await playingFrom();
    expect(await watch.textContent('#status')).toBe('playing');
    await pub.stop();
  });

  it('in WHIP mode the publish page reports what it sends too', async () => {
    const publish = await context.newPage();
    await loopbackOnly(publish);
    // WHIP has no trickle: the page's offer goes out with its candidates, moved to loopback here.
    await publish.route(/\/whip\/whip1$/, async (route) => {
      const sdp = route.request().postData() ?? '';
      const body = sdp.split('\r\n').flatMap((l) => (l.startsWith('a=candidate:') ? [loopbackCandidateLine(l)].filter((x): x is string => !!x) : [l])).join('\r\n');
      await route.continue({ postData: body });
    });
    await publish.goto(`${base}/publish/whip1?signalling=whip`);
    await publish.getByRole('button', { name: 'Start publishing' }).click();
    await publish.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 20_000 });
    const info = await waitFor('the browser\'s report over WHIP', async () => {
      const s = (await (await fetch(`${t.url}/api/streams/whip1`)).json()) as { sender?: { frameWidth?: number }; ice?: { local: { address: string }; remote: { address: string } } };
      return s.sender ? s : undefined;
    });
    expect(info.sender?.frameWidth).toBeGreaterThan(0);
    expect(info.ice).toMatchObject({ local: { address: '127.0.0.1' }, remote: { address: '127.0.0.1' } });
    await publish.getByRole('button', { name: 'Stop' }).click();
    await waitFor('stream gone', async () => ((await fetch(`${t.url}/api/streams/whip1`)).status === 404 ? true : undefined));
  });

  it('tells the user when the stream name is taken', async () => {
    const first = await context.newPage();
    await loopbackOnly(first);
    await first.goto(`${base}/publish/taken`);
    await first.getByRole('button', { name: 'Start publishing' }).click();
    await first.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 20_000 });
    const second = await context.newPage();
    await loopbackOnly(second);
    await second.goto(`${base}/publish/taken`);
    await second.getByRole('button', { name: 'Start publishing' }).click();
    await expect.poll(() => second.getByRole('alert').textContent(), { timeout: 10_000 }).toMatch(/already being published/);
    await second.goto(`${base}/publish/taken?signalling=whip`);
    await second.getByRole('button', { name: 'Start publishing' }).click();
    await expect.poll(() => second.getByRole('alert').textContent(), { timeout: 10_000 }).toMatch(/already being published/);
    await first.getByRole('button', { name: 'Stop' }).click();
  });
});
