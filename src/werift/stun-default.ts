import type { RTCPeerConnection } from 'werift';
import type { IceServer } from '../webrtc/ice-servers.js';

// werift's ICE layer replaces a missing STUN server with stun.l.google.com:19302, even for
// `iceServers: []`: a gateway must not call out unasked. This clears that default on a
// peer's transports (werift internals: test/integration/werift-patches.test.ts checks that
// nothing leaves for it).

/**
 * werift's ICE layer replaces a missing STUN server with stun.l.google.com:19302 (even for
 * `iceServers: []`), so without this the gateway would resolve and query it on every
 * publish, and where DNS or the internet is out of reach each answer waited ~5 s for that
 * query. Call after the transports exist (setRemoteDescription / addTransceiver) and
 * before gathering (setLocalDescription).
 */
export function keepToConfiguredStun(pc: RTCPeerConnection, servers: IceServer[]): void {
  const hasStun = servers.some((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]).some((u) => /^stun:/i.test(u)));
  if (hasStun) return;
  for (const t of pc.iceTransports) t.connection.stunServer = undefined;
}
