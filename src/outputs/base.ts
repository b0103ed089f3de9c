import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Output, OutputEvents, OutputInfo, OutputState } from '../streams/output-contract.js';

// What every output has in common: an id, a type, a state that announces its changes, an
// error, links for players, and the info() the API shows.

/** Short random output ids (8 hex digits). */
export function newOutputId(): string {
  return randomBytes(4).toString('hex');
}

export abstract class OutputBase extends EventEmitter<OutputEvents> implements Output {
  readonly id: string;
  state: OutputState = 'starting';
  error?: string;
  startedAt?: Date;
  restarts = 0;

  constructor(
    readonly type: string,
    id: string | undefined,
    /** Where a viewer or player finds the output (playlist, stream URL, SDP, file). */
    readonly urls: Record<string, string> = {},
  ) {
    super();
    this.id = id ?? newOutputId();
  }

  abstract get pid(): number | undefined;
  protected abstract bytesOut(): number;
  abstract start(): Promise<void>;
  abstract stop(failure?: string): Promise<void>;

  protected setState(state: OutputState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  info(): OutputInfo {
    const s = this.startedAt;
    return {
      id: this.id,
      type: this.type,
      state: this.state,
      ...(s ? { startedAt: s.toISOString(), uptimeSeconds: Math.round((Date.now() - s.getTime()) / 1000) } : {}),
      bytesOut: this.bytesOut(),
      restarts: this.restarts,
      ...(this.error ? { error: this.error } : {}),
      ...(Object.keys(this.urls).length ? { urls: this.urls } : {}),
    };
  }
}
