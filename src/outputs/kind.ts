import path from 'node:path';
import type { EventBus } from '../events/bus.js';
import type { PipelineDefinition, Values } from '../pipelines/definition.js';
import { PushTargetError } from '../egress/push-url.js';
import { PushTargetRefused, type PinnedTarget, type PushTargets } from '../egress/allowed-targets.js';
import type { Output } from '../streams/output-contract.js';
import type { Stream } from '../streams/stream.js';
import type { PipelineServices } from './pipeline-output.js';

// An output kind sets up what one type of output needs around its pipeline: its folder,
// where ffmpeg's output goes, the links players use, and what happens when it ends. The
// catalog has already checked the request (params, targets, tracks, singleton); a kind
// starts the output on the stream and returns it. Types with nothing special (pushes and
// any new pipeline JSON) share the generic kind (kinds/push.ts).

export class OutputRequestError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 507,
    message: string,
  ) {
    super(message);
  }
}

export interface KindRequest {
  stream: Stream;
  definition: PipelineDefinition;
  /** The caller's params, checked against the definition, with defaults. */
  params: Values;
  /** params plus the values the gateway supplies (audio channels and bitrate...). */
  values: Values;
  /** The output's id: given for one started again for a returning publisher. */
  id: string;
  /** data/outputs/<stream>/<id>: the output's own folder (its session SDP). */
  dir: string;
  /** Where the output sends media (checked again before each start). */
  targets: PushTarget[];
}

/** A place an output sends media to, and the param that names it. */
export interface PushTarget {
  /** A `url` param (pushes), or `host` for a pipeline with host and port params (rtp-mpegts). */
  param: string;
  /** The URL itself, or rtp://host:port for host and port params. */
  url: string;
}

export interface OutputKind {
  start(req: KindRequest): Promise<Output> | Output;
  /** Timers and state to drop when the gateway stops. */
  close?(): void;
}

/** What kinds are built with. */
export interface KindServices extends PipelineServices {
  dataDir: string;
  events: EventBus;
  targets: PushTargets;
}

/**
 * Where `url` may be sent now (the address, and the URL ffmpeg gets); otherwise an
 * OutputRequestError naming `field`: 403 for a target that is not allowed, 400 for one
 * that cannot be used at all.
 */
export async function checkTarget(targets: PushTargets, url: string, field: string): Promise<PinnedTarget> {
  try {
    return await targets.pin(url);
  } catch (e) {
    if (e instanceof PushTargetError) throw new OutputRequestError(e instanceof PushTargetRefused ? 403 : 400, `${field}: ${e.message}`);
    throw e;
  }
}

/** data/outputs/<stream>/<id>: an output's own folder (its session SDP). */
export function outputDir(dataDir: string, stream: string, id: string): string {
  return path.resolve(dataDir, 'outputs', stream, id);
}

/** The API link of an output's session SDP. */
export function sdpUrl(stream: Stream, id: string): string {
  return `/api/streams/${stream.name}/outputs/${id}/sdp`;
}
