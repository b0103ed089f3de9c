import { EventEmitter } from 'node:events';
import { keyframeStartFor } from '../rtp/keyframes.js';
import { RtpForwarder } from '../rtp/forwarder.js';
import type { RtpPacketLite } from '../rtp/packet.js';
import type { MediaTrack } from './media-track.js';
import { SegmentCadence } from './segment-cadence.js';

// The RTP an output receives, sent from its publisher's media worker: one forwarder per track, to ffmpeg on loopback or to a
// remote player. open() starts video at a keyframe (replaying the cached one at once when
// there is one, else asking the publisher for one: the session's keyframe policy repeats
// the request until it comes) and audio from the same moment, so both start together.
// An output that cuts segments also asks for keyframes at their cadence (segment-cadence.ts).
// An output may start further back (a backlog: /live's ffmpeg, for ffmpeg's own tools,
// which read 5 s before their first picture): from an older keyframe of the tracks'
// history, everything since sent as fast as ffmpeg takes it, the live packets behind it.

export interface FeedTarget {
  track: MediaTrack;
  host: string;
  port: number;
}

export interface FeedEvents {
  /** The first video keyframe went out (or, without video, audio started). */
  flowing: [];
}

/** H.264 NAL type 9 with primary_pic_type 7 (any): marks an access unit, carries no picture. */
const ACCESS_UNIT_DELIMITER = Buffer.from([0x09, 0xf0]);
/** How long open() waits, at most, for audio the gateway encodes itself (see open()). */
const AUDIO_WAIT_MAX_MS = 3000;
const AUDIO_WAIT_STEP_MS = 20;
/** Input idle this long while ffmpeg is stopping: send it a packet (see drain()). */
const NUDGE_AFTER_IDLE_MS = 200;
/**
 * A backlog goes out this much at a time, a timer tick apart (about 30 MB/s): ffmpeg's
 * UDP input thread empties its socket faster than that, where one burst of megabytes
 * would overflow the socket's buffer and lose packets.
 */
const REPLAY_BYTES_PER_TICK = 32 * 1024;

interface Attached extends FeedTarget {
  forwarder: RtpForwarder;
  unsubscribe: () => void;
}

/**
 * A shared encoder's input (an audio-only feed to the ffmpeg that makes the stream's AAC):
 * `from` gives the moment of the publisher's cached keyframe, `started` is told the moment
 * its input starts at (see open()).
 */
export interface FeedPrime {
  from: () => number | undefined;
  started: (at: number) => void;
}

export class Feed extends EventEmitter<FeedEvents> {
  private readonly attached: Attached[];
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  private waitedForAudioMs = 0;
  private flowed = false;
  private cadence: SegmentCadence | undefined;
  private nudger: NodeJS.Timeout | undefined;
  /** While a backlog is being sent: the live packets that came meanwhile, to go after it. */
  private waiting: [Attached, RtpPacketLite][] | undefined;

  constructor(
    targets: FeedTarget[],
    /** Asks the session's keyframe policy (media/keyframe-policy.ts), which merges, repeats and backs off. */
    private readonly requestKeyframe: () => void,
    private readonly prime?: FeedPrime,
  ) {
    super();
    this.attached = targets.map((t) => this.attach(t));
  }

  /**
   * Starts sending. `keyframeIntervalSeconds`: also ask for a keyframe at this cadence.
   * `backlogSeconds`: start at the newest kept keyframe at least that old (see openWithBacklog).
   */
  open(keyframeIntervalSeconds?: number, backlogSeconds = 0): void {
    // Audio the gateway encodes itself (the shared AAC) that has not come yet (its encoder
    // is starting): wait for it, so that what the output gets first has sound to go with it.
    const encoding = this.attached.find((a) => a.track.latencyMs > 0 && a.track.lastPacketAt === 0);
    if (encoding && !this.closed && (this.waitedForAudioMs += AUDIO_WAIT_STEP_MS) <= AUDIO_WAIT_MAX_MS) {
      this.timers.push(setTimeout(() => this.open(keyframeIntervalSeconds, backlogSeconds), AUDIO_WAIT_STEP_MS));
      return;
    }
    const video = this.attached.find((a) => a.track.kind === 'video');
    if (!video) {
      // A shared encoder starting after the publisher's media did: its input starts with the
      // sound cached since the keyframe every output can start at, sent at once, so that
      // sound exists in AAC (outputs need it to replay that keyframe; without it the first
      // HLS segment waited for the next keyframe, 230 ms to a GOP later).
      const since = this.prime?.from() ?? performance.now();
      this.startAudio(since);
      this.prime?.started(since);
      return;
    }
    if (keyframeIntervalSeconds) this.cadence ??= new SegmentCadence(keyframeIntervalSeconds * 1000, this.requestKeyframe);
    if (backlogSeconds > 0 && this.openWithBacklog(video, backlogSeconds)) return;
    const since = video.track.cachedKeyframeAt;
    video.forwarder.open();
    // The cached keyframe is replayed only when every audio track has what was heard when
    // it was captured (ffmpeg lines up the first packets of its inputs). An audio encoder
    // that started after it has not: the picture then starts at the next keyframe instead
    // (asked for below).
    const moment = since === undefined ? -Infinity : since - video.track.latencyMs; // when the cached keyframe was captured
    const heard = (a: Attached) => a.track.kind !== 'audio' || a.track.latencyMs === 0 || (a.track.heardFrom !== undefined && a.track.heardFrom <= moment);
    if (this.attached.every(heard)) for (const p of video.track.cached()) video.forwarder.send(p);
    if (video.forwarder.started) {
      this.startAudio(since);
      if (since !== undefined) this.keyframeSent(since);
    } else {
      this.requestKeyframe();
    }
  }

  /**
   * Starts at the newest kept keyframe at least `backlogSeconds` old (or the oldest kept)
   * whose sound every audio track still holds: video from that keyframe and audio from
   * the same moment, in the order they came, sent REPLAY_BYTES_PER_TICK a tick; packets
   * that arrive meanwhile wait and follow. False when the history holds no keyframe older
   * than the latest (the usual start then).
   */
  private openWithBacklog(video: Attached, backlogSeconds: number): boolean {
    const now = performance.now();
    const audio = this.attached.filter((a) => a.track.kind === 'audio');
    // When the picture that arrived at `at` was captured: every audio track must have its sound.
    const heard = (at: number) => audio.every((a) => a.track.heardFrom !== undefined && a.track.heardFrom <= at - video.track.latencyMs);
    const usable = video.track.keyframesAt.filter(heard);
    if (usable.length < 2) return false;
    const from = usable.findLast((at) => at <= now - backlogSeconds * 1000) ?? usable[0];
    const moment = from - video.track.latencyMs;
    // By the moment each packet holds (a track the gateway encodes arrives that much later).
    const queue = [video, ...audio]
      .flatMap((a) => a.track.cachedWithArrival(a === video ? from : moment + a.track.latencyMs).map((c) => ({ moment: c.at - a.track.latencyMs, a, packet: c.packet })))
      .sort((x, y) => x.moment - y.moment);
    for (const a of this.attached) a.forwarder.open();
    this.waiting = [];
    let next = 0;
    const step = () => {
      if (this.closed) return;
      for (let bytes = 0; next < queue.length && bytes < REPLAY_BYTES_PER_TICK; next++) {
        const q = queue[next];
        q.a.forwarder.send(q.packet);
        bytes += q.packet.payload.length;
      }
      if (!this.flowed) {
        this.flowed = true;
        this.emit('flowing');
      }
      if (next < queue.length) {
        this.timers.push(setTimeout(step, 1));
        return;
      }
      // Caught up: what came meanwhile, then live.
      const waiting = this.waiting ?? [];
      this.waiting = undefined;
      for (const [a, p] of waiting) this.deliver(a, p);
      const latest = video.track.cachedKeyframeAt;
      if (latest !== undefined) this.keyframeSent(latest);
    };
    step();
    return true;
  }

  /** A keyframe went out at `at` (performance.now()). */
  private keyframeSent(at = performance.now()): void {
    if (!this.closed) this.cadence?.keyframeSent(at);
  }

  private attach(target: FeedTarget): Attached {
    const { track } = target;
    const forwarder = new RtpForwarder({
      host: target.host,
      port: target.port,
      payloadType: track.codec.payloadType,
      clockRate: track.codec.clockRate,
      isKeyframeStart: track.kind === 'video' ? keyframeStartFor(track.codec.name) : undefined,
    });
    const attached: Attached = { ...target, forwarder, unsubscribe: () => undefined };
    attached.unsubscribe = track.subscribe((p) => (this.waiting ? this.waiting.push([attached, p]) : this.deliver(attached, p)));
    return attached;
  }

  /** A live packet of an attached track. */
  private deliver(a: Attached, p: RtpPacketLite): void {
    const { forwarder, track } = a;
    const wasStarted = forwarder.started;
    forwarder.send(p);
    if (track.kind !== 'video' || !forwarder.started) return;
    if (!wasStarted) this.startAudio(undefined);
    if (forwarder.startsKeyframe(p.payload)) this.keyframeSent();
  }

  /**
   * Audio joins from the moment the first forwarded keyframe arrived (`since`; now when
   * undefined). A track that arrives later than what it carries (the shared AAC, encoded
   * from the publisher's audio) joins that much later, so its first packet holds the same
   * moment as the first picture: ffmpeg lines up each stream's first packet.
   */
  private startAudio(since: number | undefined): void {
    const now = performance.now();
    // When the first picture was captured: a transcoded picture arrives later than that.
    const videoLatency = this.attached.find((a) => a.track.kind === 'video')?.track.latencyMs ?? 0;
    const moment = (since ?? now) - videoLatency;
    for (const a of this.attached) {
      if (a.track.kind !== 'audio') continue;
      const from = moment + a.track.latencyMs;
      if (from > now) {
        this.timers.push(setTimeout(() => !this.closed && a.forwarder.open(), from - now));
        continue;
      }
      a.forwarder.open();
      if (since !== undefined || from < now) for (const p of a.track.cached(from)) a.forwarder.send(p);
    }
    this.emit('flowing');
  }

  /**
   * ffmpeg is being stopped: packets keep flowing until it has exited, and when the
   * publisher has gone quiet, one harmless packet at a time keeps it reading (it acts on
   * SIGINT only between two input packets), so it finishes its files.
   */
  drain(): void {
    this.nudger ??= setInterval(() => {
      if (this.idleMs() > NUDGE_AFTER_IDLE_MS) this.nudge();
    }, NUDGE_AFTER_IDLE_MS / 2);
  }

  /**
   * Sends one harmless packet so that an ffmpeg waiting on a silent input reads once more:
   * a repeat of the last audio frame, or, without audio, an H.264 access unit delimiter.
   */
  private nudge(): void {
    const audio = this.attached.find((a) => a.track.kind === 'audio' && a.forwarder.started);
    if (audio) return audio.forwarder.sendNext();
    this.attached.find((a) => a.track.kind === 'video')?.forwarder.sendNext(ACCESS_UNIT_DELIMITER);
  }

  /** Milliseconds since the last packet went out (Infinity before the first). */
  private idleMs(): number {
    const last = Math.max(...this.attached.map((a) => a.forwarder.lastSentAt), 0);
    return last === 0 ? Infinity : performance.now() - last;
  }

  get bytes(): number {
    return this.attached.reduce((s, a) => s + a.forwarder.bytes, 0);
  }

  close(): void {
    this.closed = true;
    this.cadence?.stop();
    clearInterval(this.nudger);
    for (const t of this.timers) clearInterval(t);
    for (const a of this.attached) {
      a.unsubscribe();
      a.forwarder.close();
    }
  }
}
