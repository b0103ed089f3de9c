import { EventEmitter } from 'node:events';
import { renderSessionSdp } from '../sdp/render.js';
import { Feed, sdpMedia } from './feed.js';
import { newOutputId, uptime, type Output, type OutputEvents, type OutputInfo, type OutputState } from './output.js';
import type { Track } from './track.js';

// Plain RTP to a remote player: no ffmpeg, the gateway's forwarders send straight to
// {host, videoPort, audioPort}, and sdp() describes it for `vlc file.sdp` or ffplay.
// Keyframes are asked for every few seconds so a player that joins late starts soon.

export interface RtpTarget {
  host: string;
  videoPort?: number;
  audioPort?: number;
}

const KEYFRAME_INTERVAL_SECONDS = 2;

export class RtpOutput extends EventEmitter<OutputEvents> implements Output {
  readonly id: string;
  readonly type = 'rtp';
  state: OutputState = 'starting';
  error?: string;
  private feed: Feed | undefined;
  private startedAt?: Date;
  /** Links shown in info(), set by whoever creates the output. */
  urls: Record<string, string> = {};

  constructor(
    private readonly streamName: string,
    private readonly tracks: Track[],
    readonly target: RtpTarget,
    private readonly requestKeyframe: () => void,
    id?: string,
  ) {
    super();
    this.id = id ?? newOutputId();
  }

  /** Tracks that have a port in the target. */
  private sent(): { track: Track; port: number }[] {
    return this.tracks.flatMap((track) => {
      const port = track.kind === 'video' ? this.target.videoPort : this.target.audioPort;
      return port ? [{ track, port }] : [];
    });
  }

  async start(): Promise<void> {
    this.feed = new Feed(this.sent().map((s) => ({ ...s, host: this.target.host })), this.requestKeyframe);
    this.feed.once('flowing', () => {
      this.startedAt = new Date();
      this.setState('running');
    });
    this.feed.open(KEYFRAME_INTERVAL_SECONDS);
  }

  /** The session SDP a player opens to receive this output. */
  sdp(): string {
    return renderSessionSdp({ name: this.streamName, address: this.target.host, media: this.sent().map((s) => sdpMedia(s.track, s.port)) });
  }

  private setState(state: OutputState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  info(): OutputInfo {
    return {
      id: this.id,
      type: this.type,
      state: this.state,
      ...uptime(this.startedAt),
      bytesOut: this.feed?.bytes ?? 0,
      restarts: 0,
      urls: this.urls,
    };
  }

  async stop(): Promise<void> {
    this.feed?.close();
    this.feed = undefined;
    this.setState('stopped');
  }
}
