import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from 'werift';

// werift's ICE agent (full ICE, as the gateway runs it) fails at once when it starts with
// no remote candidate to check: its check list is empty, so its wait for a result ends
// before the publisher's own checks arrive. That is every offer whose only candidates are
// mDNS names (`<uuid>.local`, dropped by sdp/offer.ts: browsers send them for a page
// without a camera or microphone grant), and a trickle offer whose candidates come after
// the answer. Yet the publisher reaches the gateway's candidates, and its checks would make
// peer-reflexive pairs that work: measured with Firefox, werift reported "ICE negotiation
// failed" 235 ms before Firefox's first check arrived and completed a pair nobody used.
//
// So, until werift does it itself, its connect() first waits (up to the gateway's connect
// timeout) for a remote candidate or an incoming check, which werift keeps as an "early
// check" (its private earlyChecks) and pairs when connect() runs. Installed by
// installWeriftPatches() (install.ts).

const WAIT_MS = 10_000;
const STEP_MS = 20;

interface ConnectionInternals {
  iceLite: boolean;
  state: string;
  remoteCandidates: unknown[];
  earlyChecks: unknown[];
  connect(): Promise<void>;
}

let installed = false;

export function installIceConnectWait(): void {
  if (installed) return;
  installed = true;
  const proto = Connection.prototype as unknown as ConnectionInternals;
  const connect = proto.connect;
  if (typeof connect !== 'function') return; // a werift without it: nothing to wrap
  proto.connect = async function (this: ConnectionInternals): Promise<void> {
    const deadline = performance.now() + WAIT_MS;
    const nothingToCheck = () => !this.iceLite && this.remoteCandidates.length === 0 && (this.earlyChecks?.length ?? 0) === 0;
    while (nothingToCheck() && this.state !== 'closed' && performance.now() < deadline) await sleep(STEP_MS);
    return connect.call(this);
  };
}
