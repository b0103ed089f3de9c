import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// GET /metrics as Prometheus scrapes it: the text parsed with a Prometheus text-format
// parser, and the figures compared with what the publisher did to the gateway.

const SCRAPER = 'scraper-token-001';

describe('/metrics', () => {
  let t: TestGateway;
  let pub: Publisher;

  beforeAll(async () => {
    t = await startTestGateway({
      auth: { tokens: [{ token: SCRAPER, permissions: [{ action: 'metrics', streams: '*' }] }, { token: 'publisher-token-1', permissions: [{ action: 'publish', streams: '*' }] }] },
      log: { level: 'error' },
    });
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/m1`, token: 'publisher-token-1', width: 320, height: 180, gop: 30 });
    await pub.connected();
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  async function scrape(): Promise<Map<string, MetricFamily>> {
    const res = await fetch(`${t.url}/metrics`, { headers: { Authorization: `Bearer ${SCRAPER}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return new Map(parsePrometheusTextFormat(await res.text()).map((f) => [f.name, f]));
  }

  const value = (m: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number => {
    const sample = m.get(name)?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
    return Number(sample?.value ?? sample?.count ?? NaN);
  };

  it('needs the metrics (or control) right', async () => {
    expect((await fetch(`${t.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${t.url}/metrics`, { headers: { Authorization: 'Bearer publisher-token-1' } })).status).toBe(403);
  });

  it('streams and outputs by state, packets and bytes per stream, ICE connect time, event-loop lag', async () => {
    await waitFor('HLS running', () => t.gw.registry.get('m1')?.outputs.get('hls')?.state === 'running', 20_000);
    const m = await waitFor('video packets counted', async () => {
      const s = await scrape();
      // HLS asks for a keyframe at every segment boundary (1 s), so requests are counted too.
      return value(s, 'gateway_rtp_packets_total', { stream: 'm1', kind: 'video' }) > 100 && value(s, 'gateway_keyframe_requests_total', { stream: 'm1' }) > 0 ? s : undefined;
    });
    expect(value(m, 'gateway_streams', { state: 'live' })).toBe(1);
    expect(value(m, 'gateway_streams', { state: 'connecting' })).toBe(0);
    expect(value(m, 'gateway_outputs', { type: 'hls', state: 'running' })).toBe(1);
    expect(value(m, 'gateway_ffmpeg_processes')).toBe(2); // HLS and the stream's AAC encoder it copies from
    // One session, on the media worker the API names; every worker reports its load.
    const worker = String(t.gw.registry.get('m1')!.info().worker);
    expect(value(m, 'gateway_media_worker_sessions', { worker })).toBe(1);
    const sessions = m.get('gateway_media_worker_sessions')!.metrics.reduce((sum, x) => sum + Number(x.value), 0);
    expect(sessions).toBe(1);
    expect(m.get('gateway_media_worker_load')!.metrics.length).toBe(t.gw.config.media.workers);
    const track = t.gw.registry.get('m1')!.tracks.find((x) => x.kind === 'video')!;
    const bytes = value(m, 'gateway_rtp_bytes_total', { stream: 'm1', kind: 'video' });
    expect(bytes).toBeGreaterThan(10_000);
    expect(bytes).toBeLessThanOrEqual(track.bytes);
    expect(value(m, 'gateway_rtp_lost_total', { stream: 'm1', kind: 'video' })).toBe(0);
    expect(m.get('gateway_rtp_nacked_total')?.type).toBe('COUNTER');
    expect(value(m, 'gateway_keyframe_requests_total', { stream: 'm1' })).toBe(t.gw.registry.get('m1')!.keyframeRequests);
    const connect = m.get('gateway_ice_connect_seconds')!;
    expect(connect.type).toBe('HISTOGRAM');
    expect(Number(connect.metrics[0].count)).toBe(1);
    expect(Number(connect.metrics[0].sum)).toBeGreaterThan(0);
    expect(Number(connect.metrics[0].sum)).toBeLessThan(10);
    expect(value(m, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(value(m, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('counts an ffmpeg restart, and no failure', async () => {
    const before = await scrape();
    const restarts = (s: Map<string, MetricFamily>) => value(s, 'gateway_ffmpeg_restarts_total', { type: 'hls' }) || 0;
    const hls = t.gw.registry.get('m1')!.outputs.get('hls')!;
    process.kill(hls.pid!, 'SIGKILL');
    const after = await waitFor('restart counted', async () => {
      const s = await scrape();
      return restarts(s) > restarts(before) ? s : undefined;
    }, 15_000);
    expect(restarts(after)).toBe(restarts(before) + 1);
    await waitFor('HLS running again', () => hls.state === 'running', 20_000);
    const later = await scrape();
    expect(value(later, 'gateway_ffmpeg_failures_total', { type: 'hls' }) || 0).toBe(0);
  });
});
