import { installIceConnectWait } from './ice-connect-wait.js';
import { installFastRtpHeaderParse } from './rtp-header-parse.js';
import { installSrtpKeyCache } from './srtp-key-cache.js';

// Everything the gateway does to werift, in one folder (src/werift/), against one pinned
// version (package.json: werift 0.25.2, exactly: each of these reads or replaces werift
// internals, and an update must be a decision, checked by the tests named below).
//
// Installed in each thread that runs werift peers (the media workers) by
// installWeriftPatches(), explicitly, at start-up; nothing is patched by an import:
// - ice-connect-wait: ICE's connect() waits for a remote candidate or the publisher's
//   first check instead of failing at once with an empty check list (mDNS-only offers,
//   candidates trickled after the answer). Guarded by werift-patches.test.ts.
// - rtp-header-parse: RtpHeader.deSerialize with bit operations instead of werift's
//   per-bit strings (5 % of a worker at 10 publishers). Guarded by rtp-header-parse.test.ts
//   against werift's own parser.
// - srtp-key-cache: node:crypto's cipher factories given KeyObjects for werift's raw SRTP
//   keys (a third of a worker's time at 10 publishers), in that thread only. Guarded by
//   srtp-key-cache.test.ts.
// Used where needed, reading werift internals (also guarded by werift-patches.test.ts):
// - stun-default: clears werift's default STUN server (stun.l.google.com);
// - ice-restart: restarts ICE for a re-offer with new credentials, which werift skips
//   when the re-offer has an inactive section;
// - close-notify: an RTCP BYE and a DTLS close_notify before a peer closes (werift sends
//   neither: "todo impl send alert");
// - raw-rtcp: RTCP packets the gateway builds (transport-cc feedback, BYE) handed to
//   werift's sendRtcp, which takes only its own classes by type.

let installed = false;

export function installWeriftPatches(): void {
  if (installed) return;
  installed = true;
  installIceConnectWait();
  installFastRtpHeaderParse();
  installSrtpKeyCache();
}
