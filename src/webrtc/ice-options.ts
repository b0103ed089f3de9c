import { isIPv4, isIPv6 } from 'node:net';
import type { PeerConfig } from 'werift';
import type { Config } from '../config/schema.js';

// Turns the ICE settings into werift options. werift gathers host candidates on every
// interface (IPv6 too) and, when `iceInterfaceAddresses` matches none of them (loopback is
// never among them), silently falls back to all. So a fixed address list is given as
// "additional host addresses" with the interface scan switched off, and sockets are bound
// to that address when there is exactly one per family. Default ICE servers are none:
// werift's own default is a public STUN server, and a gateway must not call out unasked.

export function iceOptions(ice: Config['ice']): Partial<PeerConfig> {
  const v4 = ice.addresses.filter((a) => isIPv4(a));
  const v6 = ice.addresses.filter((a) => isIPv6(a));
  const base: Partial<PeerConfig> = {
    iceServers: ice.servers,
    icePortRange: ice.portRange,
  };
  if (ice.addresses.length === 0) {
    return { ...base, iceUseIpv4: true, iceUseIpv6: ice.ipv6 };
  }
  return {
    ...base,
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ice.addresses,
    iceInterfaceAddresses: {
      ...(v4.length === 1 ? { udp4: v4[0] } : {}),
      ...(v6.length === 1 ? { udp6: v6[0] } : {}),
    },
  };
}
