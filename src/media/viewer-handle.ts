import { EventEmitter } from 'node:events';
import type { IceUpdate } from '../sdp/ice-fragment.js';
import { IceUpdateRefused } from '../webrtc/ice-update-refused.js';
import type { IceUpdateResult, ReplyTo, Request, ViewerAnswerResult, ViewerStats } from './worker-messages.js';

// The main thread's side of one WHEP viewer, whose peer lives in the media worker of the
// stream it watches (media/viewer-session.ts): its state and the stats the worker reports
// every second, its ICE updates, and its end. It ends when the viewer leaves (DELETE), its
// connection fails or stays down, the stream ends, or the worker goes away.

export interface ViewerHandleEvents {
  state: [state: string];
  /** The viewer session is over (for whatever reason); emitted once. */
  ended: [reason: string];
}

/** How a viewer handle reaches its worker (the session handle's link, WorkerLink). */
export interface ViewerLink {
  request<R extends Request>(r: R): Promise<ReplyTo<R>>;
}

/** How long a viewer may stay "disconnected" before it is ended (as a publisher is: ice.disconnectTimeoutMs). */
export interface ViewerTimeouts {
  connectTimeoutMs: number;
  disconnectTimeoutMs: number;
}

export class ViewerHandle extends EventEmitter<ViewerHandleEvents> {
  state = 'new';
  stats: ViewerStats | undefined;
  /** ICE sessions since the first (restarts); the WHEP ETag names the current one. */
  iceGeneration = 0;
  readonly startedAt = new Date();
  tracks: ViewerAnswerResult['tracks'] = [];
  private ended: string | undefined;
  private readonly timer: NodeJS.Timeout;
  private disconnectTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    readonly session: string,
    private readonly link: ViewerLink,
    private readonly timeouts: ViewerTimeouts,
  ) {
    super();
    this.timer = setTimeout(() => {
      if (this.state !== 'connected') void this.close('the viewer did not connect');
    }, timeouts.connectTimeoutMs);
  }

  get closed(): boolean {
    return this.ended !== undefined;
  }

  /** Trickled candidates or an ICE restart (WHEP PATCH). Throws IceUpdateRefused saying why not. */
  async updateIce(update: IceUpdate): Promise<IceUpdateResult> {
    if (this.ended) throw new IceUpdateRefused('session-ended', 'the viewer session has ended');
    const result = await this.link.request({ op: 'viewer-ice', viewer: this.id, update });
    if (result.restarted) this.iceGeneration++;
    return result;
  }

  /** Ends the viewer session: the viewer is told (RTCP BYE, DTLS close_notify). */
  async close(reason: string): Promise<void> {
    if (this.ended) return;
    this.end(reason);
    await this.link.request({ op: 'viewer-close', viewer: this.id, reason }).catch(() => undefined);
  }

  // --- from the worker ---

  onState(state: string): void {
    this.state = state;
    this.emit('state', state);
    if (state === 'connected') {
      clearTimeout(this.disconnectTimer);
      this.disconnectTimer = undefined;
    } else if (state === 'disconnected') {
      this.disconnectTimer ??= setTimeout(() => void this.close('the viewer disconnected'), this.timeouts.disconnectTimeoutMs);
    } else if (state === 'failed' || state === 'closed') {
      void this.close(state === 'failed' ? 'the viewer\'s connection failed' : 'the viewer closed the connection');
    }
  }

  onStats(stats: ViewerStats): void {
    this.stats = stats;
  }

  /** The worker or the stream went away with it (nothing left to tell the worker). */
  end(reason: string): void {
    if (this.ended) return;
    this.ended = reason;
    clearTimeout(this.timer);
    clearTimeout(this.disconnectTimer);
    this.emit('ended', reason);
  }
}
