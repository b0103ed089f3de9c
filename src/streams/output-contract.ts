import type { EventEmitter } from 'node:events';

// The Output contract: what a stream knows of its outputs, and what the API shows of
// them. The kinds of output and how they run live in src/outputs/.

/** 'waiting' is only shown by the API: the publisher left and the output waits for its return. */
export const OUTPUT_STATES = ['starting', 'running', 'restarting', 'stopped', 'failed', 'waiting'] as const;
export type OutputState = (typeof OUTPUT_STATES)[number];

export interface OutputInfo {
  id: string;
  type: string;
  state: OutputState;
  startedAt?: string;
  uptimeSeconds?: number;
  bytesOut: number;
  restarts: number;
  error?: string;
  /** Where a viewer or player finds the output (playlist, stream URL, SDP, file). */
  urls?: Record<string, string>;
}

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
