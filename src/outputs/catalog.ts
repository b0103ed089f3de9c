import type { Config } from '../config/schema.js';
import type { EventBus } from '../events/bus.js';
import { ParamError, resolveParams, type PipelineDefinition, type Values } from '../pipelines/definition.js';
import type { PushTargets } from '../egress/allowed-targets.js';
import type { Recordings } from '../recordings/recordings.js';
import type { PortAllocator } from '../rtp/ports.js';
import type { Output } from '../streams/output-contract.js';
import type { Stream } from '../streams/stream.js';
import { newOutputId } from './base.js';
import { checkTarget, OutputRequestError, outputDir, type KindServices, type OutputKind, type PushTarget } from './kind.js';
import { HlsKind } from './kinds/hls.js';
import { MpegtsHttpKind } from './kinds/mpegts-http.js';
import { PushKind } from './kinds/push.js';
import { RecordKind } from './kinds/record.js';
import { RtpKind, rtpUrl } from './kinds/rtp.js';
import { SnapshotKind } from './kinds/snapshot.js';
import { aacSettings, sharedAac } from './shared-aac.js';
import { sharedH264 } from './shared-h264.js';

// The output types a stream can have: one per pipeline JSON (pipelines/*.json), plus
// "rtp", a plain forward with no ffmpeg. start() checks a request the same way for every
// type (params, push targets, required tracks, one-per-stream types), then hands it to the
// type's kind: hls, mpegts-http, record and snapshot have their own (kinds/); every other
// pipeline is a push (kinds/push.ts), so a new "MPEG-TS pushed over X" is one JSON file.

export { OutputRequestError } from './kind.js';

export interface CatalogServices {
  ports: PortAllocator;
  events: EventBus;
  recordings: Recordings;
  targets: PushTargets;
}

export class OutputCatalog {
  readonly hls: HlsKind;
  readonly mpegtsHttp: MpegtsHttpKind;
  readonly snapshots: SnapshotKind;
  private readonly rtp: RtpKind;
  private readonly kinds = new Map<string, OutputKind>();
  private readonly push: PushKind;

  constructor(
    private readonly config: Config,
    readonly definitions: Map<string, PipelineDefinition>,
    private readonly services: CatalogServices,
  ) {
    const kind: KindServices = {
      ports: services.ports,
      ffmpegPath: config.ffmpeg.path,
      stopTimeoutMs: config.ffmpeg.stopTimeoutMs,
      dataDir: config.dataDir,
      events: services.events,
      targets: services.targets,
      shared: {
        audio: (stream) => sharedAac(stream, kind),
        video: (stream) => sharedH264(stream, kind, { keyframeSeconds: config.hls.segmentSeconds, videoKbps: config.transcode.videoKbps, maxHeight: config.transcode.maxHeight, preset: config.transcode.preset }),
      },
    };
    this.hls = new HlsKind(kind, config.hls.cleanupAfterSeconds);
    this.mpegtsHttp = new MpegtsHttpKind(kind, config.mpegtsHttp, (stream) => this.start(stream, 'mpegts-http'));
    this.snapshots = new SnapshotKind(kind, (stream) => this.start(stream, 'snapshot'));
    this.rtp = new RtpKind(services.targets, kind.shared?.video);
    this.push = new PushKind(kind);
    this.kinds.set('hls', this.hls).set('mpegts-http', this.mpegtsHttp).set('snapshot', this.snapshots).set('record', new RecordKind(kind, services.recordings, config.recordings.minFreeMB));
    for (const def of definitions.values()) {
      if (def.delivery === 'stdout' && !this.kinds.has(def.type)) throw new Error(`pipelines/${def.type}.json: delivery "stdout" needs a kind that takes ffmpeg's output (only mpegts-http has one)`);
    }
  }

  get types(): string[] {
    return [...this.definitions.keys(), 'rtp'].sort();
  }

  /**
   * Starts an output of `type` on a live stream. Throws OutputRequestError for bad requests.
   * `id` keeps the id of an output started again for a returning publisher.
   */
  async start(stream: Stream, type: string, body: Record<string, unknown> = {}, options: { id?: string } = {}): Promise<Output> {
    if (stream.closed) throw new OutputRequestError(404, `stream ${stream.name} is not live`);
    if (type === 'rtp') return this.announce(stream, await this.rtp.start(stream, body, options.id));
    const definition = this.definitions.get(type);
    if (!definition) throw new OutputRequestError(400, `type: unknown output type "${type}" (one of ${this.types.join(', ')})`);
    let params: Values;
    try {
      params = resolveParams(definition, body, { allowListeners: this.config.push.allowListeners });
    } catch (e) {
      if (e instanceof ParamError) throw new OutputRequestError(400, e.message);
      throw e;
    }
    const targets = targetsOf(definition, params);
    for (const target of targets) await checkTarget(this.services.targets, target.url, target.param);
    for (const kind of definition.requires) {
      if (!stream.tracks.some((t) => t.kind === kind)) throw new OutputRequestError(400, `type: ${type} needs a ${kind} track and stream ${stream.name} has none`);
    }
    if (definition.singleton && stream.outputs.has(type)) throw new OutputRequestError(409, `stream ${stream.name} already has a ${type} output`);
    const audio = stream.tracks.find((t) => t.kind === 'audio');
    const values: Values = {
      ...params,
      ...aacSettings(audio?.codec.channels ?? 2),
      file: '',
    };
    const id = definition.singleton ? type : (options.id ?? newOutputId());
    const dir = outputDir(this.config.dataDir, stream.name, id);
    const kind = this.kinds.get(type) ?? this.push;
    return this.announce(stream, await kind.start({ stream, definition, params, values, id, dir, targets }));
  }

  /** Turns output state changes into gateway events. */
  private announce(stream: Stream, output: Output): Output {
    if (output.type === 'snapshot') return output; // a few hundred ms each: not worth an event
    output.on('state', (s) => {
      const base = { stream: stream.name, session: stream.sessionId };
      if (s === 'running') this.services.events.publish({ ...base, type: 'output.started', output: { id: output.id, type: output.type } });
      if (s === 'stopped') this.services.events.publish({ ...base, type: 'output.stopped', output: { id: output.id, type: output.type } });
      if (s === 'failed') this.services.events.publish({ ...base, type: 'output.failed', output: { id: output.id, type: output.type, error: output.error } });
    });
    return output;
  }

  close(): void {
    for (const kind of this.kinds.values()) kind.close?.();
  }
}

/**
 * Where an output sends media away from this machine: its URL parameters (pushes), or
 * rtp://host:port for an output with host and port parameters (rtp-mpegts).
 */
function targetsOf(def: PipelineDefinition, params: Values): PushTarget[] {
  const targets = Object.entries(def.params).filter(([name, p]) => p.type === 'url' && params[name] !== undefined).map(([name]) => ({ param: name, url: String(params[name]) }));
  if (def.params.host && params.host !== undefined && params.port !== undefined) targets.push({ param: 'host', url: rtpUrl(String(params.host), Number(params.port)) });
  return targets;
}
