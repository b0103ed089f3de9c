import type { RTCDtlsTransport } from 'werift';

// werift's RTCDtlsTransport.sendRtcp() takes its own RTCP packet classes, a closed union
// without transport-wide CC feedback built the gateway's way (rtp/twcc.ts) or a BYE, but
// all it does with each is call serialize(). Packets the gateway builds itself are handed
// over through this one adapter instead of a cast at each place that sends one.

export type RtcpPackets = Parameters<RTCDtlsTransport['sendRtcp']>[0];

/** Ready-made RTCP packets (each a whole packet's bytes), as sendRtcp takes them. */
export function rawRtcp(...packets: { serialize(): Buffer }[]): RtcpPackets {
  return packets as unknown as RtcpPackets;
}
