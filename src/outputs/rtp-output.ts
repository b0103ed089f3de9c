import type { FeedHandle } from '../media/feed-handle.js';
import { renderSessionSdp } from '../sdp/render.js';
import type { Stream, StreamEncoder } from '../streams/stream.js';
import type { TrackView } from '../streams/track-view.js';
import { OutputBase } from './base.js';
import { sdpMedia } from './sdp-media.js';

// Plain RTP to a remote player: no ffmpeg, the gateway's forwarders send straight to
// {host, videoPort, audioPort}, and sdp() describes it for `vlc file.sdp` or ffplay.
// Keyframes are asked for every few seconds so a player that joins late starts soon. A
// VP8/VP9 publisher's video goes out as the stream's H.264 (`transcoded`), as with every
// other output, unless the caller asked for the original.

export interface RtpTarget {
  host: string;
  videoPort?: number;
  audioPort?: number;
}

const KEYFRAME_INTERVAL_SECONDS = 2;

export class RtpOutput extends OutputBase {
  private feed: FeedHandle | undefined;
  /** The shared H.264 while this output sends it. */
  private video: TrackView | undefined;

  constructor(
    private readonly stream: Pick<Stream, 'name' | 'tracks' | 'openFeed'>,
    readonly target: RtpTarget,
    id: string | undefined,
    urls: (id: string) => Record<string, string>,
    /** Send this instead of the publisher's video (its VP8/VP9 transcoded). */
    private readonly transcoded?: StreamEncoder,
  ) {
    super('rtp', id);
    Object.assign(this.urls, urls(this.id));
  }

  get pid(): undefined {
    return undefined;
  }

  protected bytesOut(): number {
    return this.feed?.bytes ?? 0;
  }

  /** Tracks that have a port in the target. */
  private sent(): { track: TrackView; port: number }[] {
    // The stream's first track of each kind (a composite's second audio track, its Opus, is for WHEP viewers).
    const firsts = this.stream.tracks.filter((t, i, all) => all.findIndex((o) => o.kind === t.kind) === i);
    return firsts.flatMap((track) => {
      const port = track.kind === 'video' ? this.target.videoPort : this.target.audioPort;
      return port ? [{ track: (track.kind === 'video' && this.video) || track, port }] : [];
    });
  }

  async start(): Promise<void> {
    if (this.transcoded) {
      this.video = await this.transcoded.acquire();
      if (this.state === 'stopped') return this.transcoded.release(); // stopped while its encoder started
    }
    this.feed = this.stream.openFeed(this.sent().map((s) => ({ ...s, host: this.target.host })));
    this.feed.once('flowing', () => {
      this.startedAt = new Date();
      this.setState('running');
    });
    this.feed.open(KEYFRAME_INTERVAL_SECONDS);
  }

  /** The session SDP a player opens to receive this output. */
  sdp(): string {
    return renderSessionSdp({ name: this.stream.name, address: this.target.host, media: this.sent().map((s) => sdpMedia(s.track, s.port)) });
  }

  async stop(): Promise<void> {
    this.feed?.close();
    this.feed = undefined;
    if (this.video) this.transcoded?.release();
    this.video = undefined;
    this.setState('stopped');
  }
}
