import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { launchChromium } from '../helpers/chromium.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { makeCert, type TestCert } from '../helpers/tls-cert.js';

// The gateway's own HTTPS and WSS (http.tls), with credentials, as a user on another
// machine uses it: Chromium opens the built-in Publish page over https://, the page asks
// for the token and keeps it, publishes over WHIP with it, and the Watch page plays the
// stream's HLS over https:// with the token. A node client subscribes over wss://. Then
// the certificate files are replaced (a certbot renewal) and new connections get the new
// certificate without a restart.
//
// Media stays on loopback: the page's WHIP offer is rewritten on its way out so its one
// UDP candidate reads 127.0.0.1 (see test/helpers/chromium.ts); the pair is checked.

const TOKEN = 'studio-token-0001';
/** An operator's token: only control on a stream shows where its publisher is (the ICE pair). */
const OPS_TOKEN = 'studio-ops-token-1';
const TOKEN_KEY = 'webrtc-rtp-gateway.token';

/** A GET over HTTPS trusting the test certificate. */
function get(url: string, ca: string, token?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      })
      .on('error', reject);
  });
}

/** The SHA-256 fingerprint of the certificate a new TLS connection is given. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** The page's WHIP offer with its UDP host candidate moved to 127.0.0.1 and others dropped. */
async function loopbackWhip(page: Page): Promise<void> {
  await page.route('**/whip/*', async (route) => {
    const sdp = route.request().postData() ?? '';
    const lines = sdp.split('\r\n').flatMap((l) => {
      if (!l.startsWith('a=candidate:')) return [l];
      const f = l.split(' ');
      if (f[2]?.toLowerCase() !== 'udp' || !/^\d+\.\d+\.\d+\.\d+$/.test(f[4] ?? '') || f[7] !== 'host') return [];
      f[4] = '127.0.0.1';
      return [f.join(' ')];
    });
    await route.continue({ postData: lines.join('\r\n') });
  });
}

describe('built-in HTTPS and WSS with credentials', () => {
  let dir: string;
  let cert: TestCert;
  let t: TestGateway;
  let browser: Browser;
  let context: BrowserContext;
  let base: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gw-tls-'));
    cert = await makeCert(dir);
    t = await startTestGateway({
      http: { tls: { cert: cert.cert, key: cert.key } },
      auth: {
        tokens: [
          { token: TOKEN, permissions: [{ action: 'publish', streams: 'secure-*' }, { action: 'read', streams: 'secure-*' }] },
          { token: OPS_TOKEN, permissions: [{ action: 'control', streams: 'secure-*' }, { action: 'read', streams: 'secure-*' }] },
        ],
      },
    });
    base = t.url.replace('127.0.0.1', 'localhost');
    browser = await launchChromium();
    context = await browser.newContext({ ignoreHTTPSErrors: true });
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await t?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves https:// only, and plain http:// on the same port gets nowhere', async () => {
    expect(t.url).toMatch(/^https:\/\//);
    expect((await get(`${t.url}/healthz`, cert.pem)).status).toBe(200);
    await expect(fetch(`${t.url.replace('https', 'http')}/healthz`)).rejects.toThrow();
  });

  it('Chromium publishes from the built-in page over HTTPS with a token it was asked for, and watches over HTTPS', async () => {
    const publish = await context.newPage();
    await loopbackWhip(publish);
    await publish.goto(`${base}/publish/secure-1?signalling=whip`);
    // The gateway needs credentials: the page asks for a token and keeps it.
    const field = publish.getByLabel('Access token');
    await field.waitFor({ timeout: 10_000 });
    await field.fill(TOKEN);
    await publish.getByRole('button', { name: 'Save' }).click();
    await publish.waitForLoadState('load');
    expect(await publish.evaluate((k) => localStorage.getItem(k), TOKEN_KEY)).toBe(TOKEN);

    await publish.getByRole('button', { name: 'Start publishing' }).click();
    await publish.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 20_000 }).catch(async (e) => {
      throw new Error(`${(e as Error).message}; state=${await publish.textContent('#state')} message=${await publish.textContent('#message')}`);
    });
    const info = await waitFor('live on loopback', async () => {
      const r = await get(`${t.url}/api/streams/secure-1`, cert.pem, OPS_TOKEN);
      const s = r.status === 200 ? (JSON.parse(r.text) as { state: string; ice?: { local: { address: string } }; tracks: { kind: string; codec: string; packets: number }[] }) : undefined;
      return s?.state === 'live' && s.tracks.some((x) => x.kind === 'video' && x.packets > 30) ? s : undefined;
    }, 20_000);
    expect(info.ice?.local.address).toBe('127.0.0.1');
    expect(info.tracks.map((x) => `${x.kind}:${x.codec}`).sort()).toEqual(['audio:opus', 'video:H264']);
    // The addresses the page shows for players carry the token.
    expect(await publish.textContent('#hls')).toBe(`${base}/hls/secure-1/index.m3u8?token=${TOKEN}`);

    const watch = await context.newPage();
    await watch.goto(`${base}/watch/secure-1`);
    const played = await watch.waitForFunction(
      () => {
        const v = document.querySelector('video') as HTMLVideoElement;
        return v && v.videoWidth > 0 && v.currentTime > 1 ? v.videoWidth : false;
      },
      undefined,
      { timeout: 30_000, polling: 250 },
    );
    expect(await played.jsonValue()).toBeGreaterThan(0);
    await watch.close();

    // WSS: a dashboard-like subscriber with the token as its subprotocol.
    const ws = new WebSocket(`${t.url.replace('https', 'wss')}/ws`, ['webrtc-rtp-gateway', `token.${Buffer.from(TOKEN).toString('base64url')}`], { ca: cert.pem });
    const names = await new Promise<string[]>((resolve, reject) => {
      ws.once('open', () => ws.send(JSON.stringify({ type: 'subscribe' })));
      ws.on('message', (m) => {
        const msg = JSON.parse(String(m)) as { type: string; streams?: { name: string }[] };
        if (msg.type === 'streams') resolve(msg.streams!.map((s) => s.name));
      });
      ws.once('error', reject);
    });
    ws.close();
    expect(names).toEqual(['secure-1']);

    await publish.getByRole('button', { name: 'Stop' }).click();
    await waitFor('gone', async () => ((await get(`${t.url}/api/streams/secure-1`, cert.pem, TOKEN)).status === 404 ? true : undefined));
  });

  it('a renewed certificate is served to new connections without a restart', async () => {
    const before = await servedFingerprint(t.gw.port);
    const renewed = await makeCert(dir, 'renewed');
    // certbot writes new files; here the new pair is copied over the configured paths.
    await copyFile(renewed.key, cert.key);
    await copyFile(renewed.cert, cert.cert);
    const after = await waitFor('new certificate served', async () => {
      const f = await servedFingerprint(t.gw.port);
      return f !== before ? f : undefined;
    }, 15_000, 250);
    expect(after).toBe(new X509Certificate(renewed.pem).fingerprint256);
    expect((await get(`${t.url}/healthz`, renewed.pem)).status).toBe(200);
  });
});
