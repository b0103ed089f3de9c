import { isIPv4, isIPv6 } from 'node:net';
import { useSdesMid, useTransportWideCC, type PeerConfig, type RTCRtpCodecParameters } from 'werift';
import type { Config } from '../config/schema.js';
import { iceServers, type IceServer } from './ice-servers.js';

// Turns the ICE settings into werift options. werift gathers host candidates on every
// interface (IPv6 too) and, when `iceInterfaceAddresses` matches none of them (loopback is
// never among them), silently falls back to all. So a fixed address list is given as
// "additional host addresses" with the interface scan switched off, and sockets are bound
// to that address when there is exactly one per family. Default ICE servers are none:
// werift's own default is a public STUN server, and a gateway must not call out unasked.

//
// A gateway behind a 1:1 NAT lists its public address(es) in `publicAddresses`: they are
// advertised as host candidates on sockets bound to the wildcard address, so packets that
// the NAT forwards to the private address reach them. werift keeps only the first STUN
// and the first TURN URL of the list (all of them are still advertised to clients).

export function iceOptions(ice: Config['ice'], servers: IceServer[] = gatewayServers(ice)): Partial<PeerConfig> {
  const base: Partial<PeerConfig> = {
    iceServers: servers,
    icePortRange: ice.portRange,
    iceUseTcp: ice.tcp,
    iceTcpPassive: ice.tcp,
  };
  const hosts = [...ice.addresses, ...ice.publicAddresses];
  if (hosts.length === 0) {
    return { ...base, iceUseIpv4: true, iceUseIpv6: ice.ipv6 };
  }
  // With public addresses the sockets must listen on the wildcard (the NAT forwards to the private IP).
  const bindable = ice.publicAddresses.length ? [] : ice.addresses;
  const v4 = bindable.filter((a) => isIPv4(a));
  const v6 = bindable.filter((a) => isIPv6(a));
  return {
    ...base,
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: hosts,
    iceInterfaceAddresses: {
      ...(v4.length === 1 ? { udp4: v4[0] } : {}),
      ...(v6.length === 1 ? { udp6: v6[0] } : {}),
    },
  };
}

/** The ICE servers the gateway's own peers use: TURN is left out when turnForGateway is off. */
export function gatewayServers(ice: Config['ice']): IceServer[] {
  const all = iceServers(ice, 'gateway');
  if (ice.turnForGateway) return all;
  return all
    .map((s) => ({ ...s, urls: (Array.isArray(s.urls) ? s.urls : [s.urls]).filter((u) => !/^turns?:/i.test(u)) }))
    .filter((s) => s.urls.length > 0);
}

/**
 * A gateway peer's werift options (a publisher's or a WHEP viewer's): the ICE settings, the
 * codecs it may use per kind, and the header extensions both read (mid; transport-wide
 * sequence numbers, for the congestion feedback).
 */
export function peerConfig(ice: Config['ice'], servers: IceServer[], codecs: { video: RTCRtpCodecParameters[]; audio: RTCRtpCodecParameters[] }): Partial<PeerConfig> {
  return {
    ...iceOptions(ice, servers),
    codecs,
    headerExtensions: {
      video: [useSdesMid(), useTransportWideCC()],
      audio: [useSdesMid(), useTransportWideCC()],
    },
  };
}
