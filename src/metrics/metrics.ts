import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Grant } from '../auth/permissions.js';
import type { LimitKind } from '../http/limits.js';
import type { WorkerInfo } from '../media/workers.js';
import type { StreamRegistry } from '../streams/registry.js';
import type { Output } from '../streams/output-contract.js';
import type { Stream } from '../streams/stream.js';

// GET /metrics for Prometheus (prom-client). Counts that live in the streams (packets,
// bytes, loss, NACKs, keyframe requests) are read from them when scraped, so the media
// path does no extra work per packet; they are per publisher session and start again
// at 0 when a publisher reconnects (Prometheus' rate() handles such resets). Events that
// outlive a stream (ffmpeg restarts and failures, ICE connect times) are counted as
// they happen. Each gateway has its own registry, so tests can run several.

const STREAM_STATES = ['connecting', 'live'] as const;

/** What the gateway reports besides its streams. */
export interface MetricSources {
  websocketClients: () => number;
  workers: () => WorkerInfo[];
  /** Open connections and refusals by kind (http/limits.ts). */
  connections: () => { kind: LimitKind; open: number; refused: number; cap: number }[];
}

/** A sample line's stream label (stream names need no escaping). */
const STREAM_LABEL = /[{,]stream="([^"]*)"/;

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly restarts: Counter<'type'>;
  private readonly failures: Counter<'type'>;
  private readonly connectSeconds: Histogram;

  constructor(streams: StreamRegistry, { websocketClients, workers, connections }: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry }); // process CPU and memory, event-loop lag, GC

    new Gauge({
      name: 'gateway_streams',
      help: 'Publisher sessions (one per stream name) by state',
      labelNames: ['state'],
      registers,
      collect() {
        for (const state of STREAM_STATES) this.set({ state }, streams.all().filter((s) => s.state === state).length);
      },
    });
    new Gauge({
      name: 'gateway_outputs',
      help: 'Outputs by type and state',
      labelNames: ['type', 'state'],
      registers,
      collect() {
        this.reset();
        for (const s of streams.all()) for (const o of s.outputs.values()) this.inc({ type: o.type, state: o.state });
      },
    });
    new Gauge({ name: 'gateway_websocket_connections', help: 'Open WebSocket signalling connections', registers, collect() { this.set(websocketClients()); } });
    new Gauge({
      name: 'gateway_connections',
      help: 'Open connections by kind (connections: TCP to the HTTP server; requests: being answered; websockets; sse) (limits.*)',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const c of connections()) this.set({ kind: c.kind }, c.open);
      },
    });
    new Gauge({
      name: 'gateway_connection_limit',
      help: 'The total cap of each kind of connection (limits.*.total, or the one picked from the file-descriptor limit)',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const c of connections()) this.set({ kind: c.kind }, c.cap);
      },
    });
    new Counter({
      name: 'gateway_connections_refused_total',
      help: 'Connections and requests refused at a cap (429 or 503 with Retry-After), by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const c of connections()) this.inc({ kind: c.kind }, c.refused);
      },
    });
    const perWorker = (name: string, help: string, value: (w: WorkerInfo) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['worker'],
        registers,
        collect() {
          this.reset();
          for (const w of workers()) this.set({ worker: String(w.index) }, value(w));
        },
      });
    perWorker('gateway_media_worker_sessions', 'Publisher sessions on each media worker thread', (w) => w.sessions);
    perWorker('gateway_media_worker_load', 'Event-loop utilisation of each media worker thread over its last second (0-1; 1 = a busy core)', (w) => w.load);
    perWorker('gateway_media_worker_restarts', 'Times each media worker was started again after it stopped unexpectedly', (w) => w.restarts);
    new Gauge({ name: 'gateway_ffmpeg_processes', help: 'Running ffmpeg processes', registers, collect() { this.set(streams.ffmpegPids().length); } });
    new Gauge({
      name: 'gateway_shared_encoder_cpu_percent',
      help: "CPU of each stream's shared encoder (pipeline h264: VP8/VP9 transcoded to H.264; aac), percent of one core over its last 2 s",
      labelNames: ['stream', 'pipeline'],
      registers,
      collect() {
        this.reset();
        for (const s of streams.all()) {
          for (const { encoder } of s.encoders()) if (encoder.cpuPercent !== undefined) this.set({ stream: s.name, pipeline: encoder.pipeline }, encoder.cpuPercent);
        }
      },
    });
    new Gauge({
      name: 'gateway_whep_viewers',
      help: 'WHEP viewers (real-time WebRTC playback) of each stream, connected or connecting',
      labelNames: ['stream'],
      registers,
      collect() {
        this.reset();
        for (const s of streams.all()) this.set({ stream: s.name }, s.media.viewers.size);
      },
    });

    const perTrack = (name: string, help: string, value: (t: Stream['tracks'][number]) => number) =>
      new Counter({
        name,
        help: `${help} (this publisher session)`,
        labelNames: ['stream', 'kind'],
        registers,
        collect() {
          this.reset();
          for (const s of streams.all()) for (const t of s.tracks) this.inc({ stream: s.name, kind: t.kind }, value(t));
        },
      });
    perTrack('gateway_rtp_packets_total', 'RTP packets received from the publisher', (t) => t.packets);
    perTrack('gateway_rtp_bytes_total', 'RTP bytes received from the publisher (payloads and their 12-byte headers)', (t) => t.bytes);
    perTrack('gateway_rtp_lost_total', 'Packets given up as lost (never arrived, even after NACKs)', (t) => t.lost);
    perTrack('gateway_rtp_nacked_total', 'Packets asked for again with NACK (one packet may be asked more than once)', (t) => t.nacked);
    new Counter({
      name: 'gateway_keyframe_requests_total',
      help: 'Keyframe requests (PLI) sent to the publisher (this publisher session)',
      labelNames: ['stream'],
      registers,
      collect() {
        this.reset();
        for (const s of streams.all()) this.inc({ stream: s.name }, s.keyframeRequests);
      },
    });

    this.restarts = new Counter({ name: 'gateway_ffmpeg_restarts_total', help: 'ffmpeg processes restarted after they exited unasked', labelNames: ['type'], registers });
    this.failures = new Counter({ name: 'gateway_ffmpeg_failures_total', help: 'Outputs that ended as failed', labelNames: ['type'], registers });
    this.connectSeconds = new Histogram({
      name: 'gateway_ice_connect_seconds',
      help: 'Seconds from the SDP answer to ICE and DTLS connected',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers,
    });
    streams.on('stream', (s) => this.watch(s));
  }

  private watch(stream: Stream): void {
    stream.once('live', () => this.connectSeconds.observe((Date.now() - stream.startedAt.getTime()) / 1000));
    stream.on('output', (o: Output) =>
      o.on('state', (state) => {
        if (state === 'restarting') this.restarts.inc({ type: o.type });
        if (state === 'failed') this.failures.inc({ type: o.type });
      }),
    );
  }

  /**
   * The exposition text. Series about a stream are left out where the scraper's grant does
   * not cover that stream (a metrics token for "studio-*" sees only those streams).
   */
  async text(grant?: Grant): Promise<string> {
    const text = await this.registry.metrics();
    if (!grant || grant.open) return text;
    return text
      .split('\n')
      .filter((line) => {
        const stream = line.startsWith('#') ? undefined : STREAM_LABEL.exec(line)?.[1];
        return stream === undefined || grant.allows('metrics', stream);
      })
      .join('\n');
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
