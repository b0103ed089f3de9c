import { EventEmitter } from 'node:events';
import type { Command } from './worker-messages.js';

// The main thread's side of an output's feed (media/feed.ts runs in the publisher's
// worker): the ports ffmpeg listens on, open/drain/close as messages, and what the worker
// reports back (flowing, bytes sent).

export interface FeedHandleEvents {
  /** The first video keyframe went out (or, without video, audio started). */
  flowing: [];
}

export class FeedHandle extends EventEmitter<FeedHandleEvents> {
  /** Bytes sent, as of the worker's last stats report. */
  bytes = 0;
  private hasFlowed = false;
  private closed = false;
  private severed = false;

  constructor(
    readonly id: number,
    /** The loopback ports it sends to, in the order of its targets. */
    readonly ports: number[],
    private readonly command: (c: Command) => void,
  ) {
    super();
  }

  /** True while nothing can come: before media first went out, or once its worker is gone. */
  get silent(): boolean {
    return !this.hasFlowed || this.severed;
  }

  /**
   * Starts sending. `keyframeIntervalSeconds`: also ask for a keyframe at this cadence.
   * `backlogSeconds`: start at a keyframe that far back, the seconds since sent at once.
   */
  open(keyframeIntervalSeconds?: number, backlogSeconds?: number): void {
    if (!this.closed) this.command({ op: 'feed-open', feed: this.id, keyframeIntervalSeconds, ...(backlogSeconds ? { backlogSeconds } : {}) });
  }

  /** ffmpeg is being stopped: keep its input from going silent until close(). */
  drain(): void {
    if (!this.closed) this.command({ op: 'feed-drain', feed: this.id });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.command({ op: 'feed-close', feed: this.id });
    this.removeAllListeners();
  }

  /** Its worker went away: nothing more will be sent. */
  sever(): void {
    this.severed = true;
  }

  /** From the worker: media went out. */
  markFlowing(): void {
    if (this.closed || this.hasFlowed) return;
    this.hasFlowed = true;
    this.emit('flowing');
  }
}
