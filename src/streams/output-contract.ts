import type { EventEmitter } from 'node:events';
import { z } from 'zod';

// The Output contract: what a stream knows of its outputs, and what the API shows of
// them. The kinds of output and how they run live in src/outputs/.

/** 'waiting' is only shown by the API: the publisher left and the output waits for its return. */
export const OUTPUT_STATES = ['starting', 'running', 'restarting', 'stopped', 'failed', 'waiting'] as const;
export type OutputState = (typeof OUTPUT_STATES)[number];

/** What the API shows of an output (GET .../outputs); /api/openapi.json lists the types the gateway has loaded. */
export const outputInfo = z.strictObject({
  id: z.string(),
  type: z.string().describe('the output type: a pipeline JSON, or rtp'),
  state: z.enum(OUTPUT_STATES).describe('waiting: the publisher left, and the output waits for its return (streams.resumeOutputsSeconds)'),
  startedAt: z.iso.datetime().optional(),
  uptimeSeconds: z.number().int().min(0).optional(),
  bytesOut: z.number().int().min(0),
  restarts: z.number().int().min(0).describe('started again after ffmpeg died'),
  error: z.string().optional().describe("why it failed: ffmpeg's last error lines, or disk full"),
  urls: z.record(z.string(), z.string()).optional().describe('where a viewer or player finds the output (playlist, stream URL, SDP, file)'),
});
export type OutputInfo = z.infer<typeof outputInfo>;

export interface OutputEvents {
  state: [OutputState];
}

/** What every kind of output offers to its stream and to the API. */
export interface Output extends EventEmitter<OutputEvents> {
  readonly id: string;
  readonly type: string;
  readonly state: OutputState;
  readonly error?: string;
  readonly pid?: number;
  info(): OutputInfo;
  start(): Promise<void>;
  stop(failure?: string): Promise<void>;
  /** The session SDP a remote player opens (rtp and rtp-mpegts outputs). */
  sdp?(): string;
}
