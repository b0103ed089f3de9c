import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { continuedTimestampOffset } from './continuity.js';
import { serializeRtp, type RtpPacketLite } from './packet.js';

// Sends one track's RTP to one ffmpeg input on loopback. Per output the SSRC is fixed and
// sequence numbers and timestamps continue without jumps, even when the publisher's SSRC
// changes (renegotiation, encoder restart): ffmpeg's RTP demuxer treats such jumps as
// loss or a new stream ("deformed media"). Video can be held back until a packet that
// starts a keyframe, so ffmpeg's first frame decodes.

export interface ForwarderOptions {
  port: number;
  host?: string;
  /** Payload type written on every packet (the one in the session SDP). */
  payloadType: number;
  clockRate: number;
  /** Returns true when a packet starts a decodable picture (H.264: SPS or IDR). */
  isKeyframeStart?: (payload: Buffer) => boolean;
}

/** Bound on what waits for connect() (a keyframe at most, in practice). */
const MAX_PENDING = 1000;

export class RtpForwarder {
  readonly ssrc = randomInt(1, 0xffffffff);
  bytes = 0;
  /** False while waiting for a keyframe (video) or for `open()`. */
  private flowing = false;
  private opened = false;
  private seq = randomInt(0, 0x7fff);
  private sourceSsrc: number | undefined;
  private tsOffset = 0;
  private lastOutTs: number | undefined;
  /** Timestamp step between the last two different timestamps (one frame). */
  private lastStep = 0;
  private lastPacket: RtpPacketLite | undefined;
  /** performance.now() of the last packet sent (0 before the first). */
  lastSentAt = 0;
  private readonly socket: dgram.Socket;
  /** Packets sent while the socket connects (a tick or two); undefined once connected. */
  private pending: Buffer[] | undefined = [];

  constructor(private readonly options: ForwarderOptions) {
    this.socket = dgram.createSocket('udp4');
    // Sending before ffmpeg binds gets ICMP "port unreachable"; that is expected, not fatal.
    // (The socket is reading once connected, so such an error is taken by a read and never
    // eats a later packet.)
    this.socket.on('error', () => undefined);
    // A send to a connected socket skips node's per-packet address lookup (a nextTick) and
    // the kernel's route lookup: about half the cost of a send, measured (15 -> 8.5 us on
    // this machine), and sends are a quarter of a media worker's time. node drops what is
    // sent while it connects, so that much (a tick) waits here.
    this.socket.connect(options.port, options.host ?? '127.0.0.1', () => {
      const waiting = this.pending ?? [];
      this.pending = undefined;
      for (const b of waiting) this.socket.send(b);
    });
  }

  /** True once the first packet went out (for video: the first keyframe). */
  get started(): boolean {
    return this.flowing;
  }

  /** Whether `payload` starts a keyframe of this track's codec (never for audio). */
  startsKeyframe(payload: Buffer): boolean {
    return this.options.isKeyframeStart?.(payload) ?? false;
  }

  /** Starts sending: from the next keyframe start for video, at once for audio. */
  open(): void {
    this.opened = true;
    if (!this.options.isKeyframeStart) this.flowing = true;
  }

  send(p: RtpPacketLite): void {
    if (!this.opened) return;
    if (!this.flowing) {
      if (!this.options.isKeyframeStart?.(p.payload)) return;
      this.flowing = true;
    }
    if (p.ssrc !== this.sourceSsrc) this.rebase(p);
    const timestamp = (p.timestamp + this.tsOffset) >>> 0;
    this.seq = (this.seq + 1) & 0xffff;
    const out = serializeRtp({ ...p, payloadType: this.options.payloadType, ssrc: this.ssrc, sequenceNumber: this.seq, timestamp });
    if (this.lastOutTs !== undefined && timestamp !== this.lastOutTs) this.lastStep = (timestamp - this.lastOutTs) >>> 0;
    this.lastOutTs = timestamp;
    this.lastPacket = p;
    this.lastSentAt = performance.now();
    this.bytes += out.length;
    if (!this.pending) this.socket.send(out);
    else if (this.pending.length < MAX_PENDING) this.pending.push(out);
  }

  /**
   * One more packet, one frame after the last: the last payload again, or `payload`
   * instead. ffmpeg, asked to stop while its input is silent, only notices between two
   * packets (see PipelineRun.stop); this is that packet.
   */
  sendNext(payload?: Buffer): void {
    const last = this.lastPacket;
    if (!this.flowing || !last || this.lastOutTs === undefined) return;
    const step = this.lastStep > 0 && this.lastStep < this.options.clockRate ? this.lastStep : Math.round(this.options.clockRate / 50);
    const timestamp = (this.lastOutTs + step) >>> 0;
    this.send({ ...last, marker: true, payload: payload ?? last.payload, timestamp: (timestamp - this.tsOffset) >>> 0 });
  }

  /** A new source SSRC: keep the output timeline moving forward by the wall-clock gap. */
  private rebase(p: RtpPacketLite): void {
    if (this.lastOutTs === undefined) {
      this.tsOffset = randomInt(0, 0x7fffffff) - p.timestamp;
    } else {
      this.tsOffset = continuedTimestampOffset(this.lastOutTs, this.lastSentAt, performance.now(), this.options.clockRate, p.timestamp);
    }
    this.sourceSsrc = p.ssrc;
  }

  close(): void {
    this.opened = false;
    this.flowing = false;
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}
