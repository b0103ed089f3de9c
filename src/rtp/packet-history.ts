import type { RtpPacketLite } from './packet.js';

// The recent packets of one track, by sequence number, for retransmissions (a viewer's
// NACK, media/viewer-session.ts). A ring of a power-of-two size: a slot holds the last
// packet whose sequence number maps to it, so a lookup checks the number and the SSRC
// (a packet from before a source change, or more than a ring ago, is gone). One ring per
// track serves every viewer of it: a viewer asks by the publisher's numbers.

export class PacketHistory {
  private readonly slots: (RtpPacketLite | undefined)[];
  private readonly mask: number;

  /** `size`: packets kept, rounded up to a power of two (at most 65536). */
  constructor(size: number) {
    let n = 1;
    while (n < Math.min(Math.max(size, 1), 0x10000)) n <<= 1;
    this.slots = new Array<RtpPacketLite | undefined>(n);
    this.mask = n - 1;
  }

  get size(): number {
    return this.slots.length;
  }

  put(p: RtpPacketLite): void {
    this.slots[p.sequenceNumber & this.mask] = p;
  }

  /** The packet `seq` of source `ssrc`, if it is still kept. */
  get(ssrc: number, seq: number): RtpPacketLite | undefined {
    const p = this.slots[seq & 0xffff & this.mask];
    return p && p.sequenceNumber === (seq & 0xffff) && p.ssrc === ssrc ? p : undefined;
  }

  clear(): void {
    this.slots.fill(undefined);
  }
}
