import type { RtpPacket } from 'werift';
import type { ChosenCodec } from './codec-policy.js';

// werift routes RTP by the SSRCs the offer announced. A publisher that changes SSRC
// without a new offer (an encoder restart in some WHIP clients) is dropped by werift for
// good: video stopped while audio kept the stream "live". This follows such a change:
// a packet of a payload type the gateway took that werift did not deliver, while that
// track's known SSRC has been silent for SILENT_MS, is delivered by the gateway itself,
// and keyframes are then asked for on the new SSRC. (werift does not NACK or report on
// the new SSRC: lost packets stay lost until the publisher renegotiates.)
//
// werift delivers synchronously inside the transport's onRtp event, and its router
// subscribed first, so by the time transportPacket() sees a packet, weriftDelivered()
// has already been called for it if werift took it.

const SILENT_MS = 500;

export class SsrcFollower {
  /** When werift last delivered a packet of each track (by m-section index). */
  private readonly weriftAt = new Map<number, number>();
  private readonly adopted = new Map<number, number>();
  private last: { ssrc: number; seq: number } | undefined;

  constructor(
    private readonly tracks: ChosenCodec[],
    private readonly deliver: (codec: ChosenCodec, rtp: RtpPacket) => void,
    /** A track now comes from `ssrc` (not announced in the offer). */
    private readonly onAdopt: (codec: ChosenCodec, ssrc: number) => void,
  ) {}

  /** werift delivered this packet of `codec`'s track. */
  weriftDelivered(codec: ChosenCodec, rtp: RtpPacket): void {
    this.last = { ssrc: rtp.header.ssrc, seq: rtp.header.sequenceNumber };
    this.weriftAt.set(codec.index, performance.now());
  }

  /** Every decrypted RTP packet of the transport, after werift routed it. */
  transportPacket(rtp: RtpPacket): void {
    const { ssrc, sequenceNumber, payloadType } = rtp.header;
    if (this.last && this.last.ssrc === ssrc && this.last.seq === sequenceNumber) return;
    const codec = this.tracks.find((c) => c.payloadType === payloadType);
    if (!codec) return; // RTX, FEC, or a codec not taken
    const known = this.weriftAt.get(codec.index);
    if (known !== undefined && performance.now() - known < SILENT_MS) return; // the announced SSRC still flows
    if (this.adopted.get(codec.index) !== ssrc) {
      this.adopted.set(codec.index, ssrc);
      this.onAdopt(codec, ssrc);
    }
    this.deliver(codec, rtp);
  }
}
