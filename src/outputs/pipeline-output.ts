import type { PipelineDefinition, Values } from '../pipelines/definition.js';
import type { Stream, StreamEncoder } from '../streams/stream.js';
import { OutputBase } from './base.js';
import { PipelineRun, type PipelineRunOptions, type RunContext } from './pipeline-run.js';

// An output as the API shows it (state, restarts, error, links) around one pipeline run
// (pipeline-run.ts: one ffmpeg at a time, fed on its own loopback ports). Starting,
// stopping or crashing one output touches nothing else.

export interface PipelineOutputOptions extends Omit<PipelineRunOptions, 'id'> {
  id?: string;
  /** Links shown in info(). */
  urls?: Record<string, string>;
  /** The session SDP a remote player opens (an output that sends RTP away). */
  sdp?: string;
}

export class PipelineOutput extends OutputBase {
  /** The session SDP of an output that sends to a remote player (rtp-mpegts). */
  readonly sdp?: () => string;
  private readonly run: PipelineRun;

  constructor(definition: PipelineDefinition, dir: string, values: Values, ctx: RunContext, options: PipelineOutputOptions = {}) {
    super(definition.type, options.id, options.urls);
    const sdp = options.sdp;
    if (sdp !== undefined) this.sdp = () => sdp;
    this.run = new PipelineRun(definition, dir, values, ctx, { ...options, id: this.id });
    this.run.on('flowing', () => {
      this.startedAt ??= new Date();
      this.setState('running');
    });
    this.run.on('restarting', (error) => {
      this.error = error;
      this.restarts = this.run.restarts;
      this.setState('restarting');
    });
    this.run.on('failed', (error) => {
      this.error = error;
      this.setState('failed');
    });
    this.run.on('finished', () => this.setState('stopped'));
  }

  protected bytesOut(): number {
    return this.run.bytesOut;
  }

  get pid(): number | undefined {
    return this.run.pid;
  }

  start(): Promise<void> {
    return this.run.start();
  }

  /**
   * Stops cleanly (ffmpeg finishes its files). With `failure`, the output ends as failed
   * with that reason (stopped before the disk filled up: what was written is finished and
   * kept, but it did not end as asked).
   */
  async stop(failure?: string): Promise<void> {
    if (this.run.stopped) return;
    if (failure) this.error = failure;
    await this.run.stop();
    if (failure) this.setState('failed');
    else if (this.state !== 'failed') this.setState('stopped');
  }
}

/** What a pipeline output needs besides its definition: where ffmpeg is and how long it may take to stop. */
export interface PipelineServices {
  ports: RunContext['ports'];
  ffmpegPath: string;
  stopTimeoutMs: number;
  /** The stream's shared encodes (the catalog wires outputs/shared-aac.ts and shared-h264.ts in). */
  shared?: { [K in 'audio' | 'video']?: (stream: Stream) => StreamEncoder };
}

/** What a run on `stream` is given (outputs and shared encoders alike). */
export function runContext(stream: Stream, services: PipelineServices): RunContext {
  return {
    ports: services.ports,
    ffmpegPath: services.ffmpegPath,
    stopTimeoutMs: services.stopTimeoutMs,
    streamName: stream.name,
    tracks: stream.tracks,
    shared: {
      audio: services.shared?.audio && (() => services.shared!.audio!(stream)),
      video: services.shared?.video && (() => services.shared!.video!(stream)),
    },
    requestKeyframe: () => stream.requestKeyframe(),
    openFeed: (targets) => stream.openFeed(targets),
    log: stream.log,
  };
}

/**
 * Starts a pipeline output on a stream. An output started while the publisher is still
 * connecting does not wait for SPS/PPS (see waitForParameterSets).
 */
export function startPipeline(stream: Stream, services: PipelineServices, definition: PipelineDefinition, dir: string, values: Values, options: PipelineOutputOptions = {}): PipelineOutput {
  if (stream.closed) throw new Error(`stream ${stream.name} is closing`);
  if (options.id && stream.outputs.has(options.id)) throw new Error(`output ${options.id} already exists`);
  return stream.attachOutput(new PipelineOutput(definition, dir, values, runContext(stream, services), { waitForParameterSets: stream.state === 'live', ...options }));
}
