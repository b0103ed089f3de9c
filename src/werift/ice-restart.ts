import type { RTCPeerConnection } from 'werift';

// ICE restart on werift's answering side (0.25). werift restarts ICE by itself when a
// re-offer carries new credentials, except when the re-offer has any `a=inactive` section
// (every offer with a section the gateway leaves out): it then takes the new credentials
// for "renomination", keeps its own ufrag/pwd and its old check list, and nothing
// connects. restartForNewCredentials() restarts the transports itself first;
// setRemoteDescription then only stores the new remote credentials.
//
// After the restart werift does not start checks of its own (its connect() returns early
// while DTLS is connected); it needs none: the publisher, which controls ICE, checks the
// new candidates and nominates a pair, and werift answers those checks. DTLS and SRTP are
// not redone (same DtlsSocket, same keys, same SSRCs): media goes on where it was.
// These are werift internals: test/integration/werift-patches.test.ts fails when they change.

interface IceTransportInternals {
  renominating?: boolean;
}

export interface IceCredentials {
  ufrag: string;
  pwd: string;
}

/**
 * Before setRemoteDescription(re-offer): restarts every ICE transport whose remote
 * credentials differ from `remote`. Returns how many it restarted.
 */
export function restartForNewCredentials(pc: RTCPeerConnection, remote: IceCredentials): number {
  let restarted = 0;
  for (const t of pc.iceTransports) {
    const c = t.connection;
    if (!c.remoteUsername || (c.remoteUsername === remote.ufrag && c.remotePassword === remote.pwd)) continue;
    t.restart(); // new local ufrag/pwd, generation + 1, candidates and checks cleared, sockets kept
    (t as unknown as IceTransportInternals).renominating = false;
    restarted++;
  }
  return restarted;
}
