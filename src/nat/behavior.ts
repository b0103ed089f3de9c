import dgram from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { bindingRequest, parseBindingResponse, type BindingResponse, type Endpoint } from './stun.js';

// NAT behaviour discovery (RFC 5780 §4.3 mapping, §4.4 filtering) against a STUN server
// that has a second address (coturn with two listening IPs), and what it means for
// publishing to the gateway.

export type Behavior = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

export interface NatReport {
  server: Endpoint;
  local: Endpoint;
  mapped?: Endpoint;
  natPresent?: boolean;
  mapping?: Behavior;
  filtering?: Behavior;
  /** Why a test could not be run (no response, server without RFC 5780...). */
  problems: string[];
  advice: string;
}

const same = (a?: Endpoint, b?: Endpoint) => !!a && !!b && a.address === b.address && a.port === b.port;

class Prober {
  private readonly socket = dgram.createSocket('udp4');
  private readonly waiting = new Map<string, (r: BindingResponse) => void>();

  async open(localAddress?: string): Promise<Endpoint> {
    this.socket.on('message', (msg) => {
      const r = parseBindingResponse(msg);
      const done = r && this.waiting.get(r.transactionId.toString('hex'));
      if (r && done) done(r);
    });
    await new Promise<void>((resolve) => this.socket.bind(0, localAddress, () => resolve()));
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  /** One Binding request, retransmitted (RFC 5389: 500 ms doubling), or undefined on silence. */
  request(to: Endpoint, change: { ip?: boolean; port?: boolean } = {}, tries = 4): Promise<BindingResponse | undefined> {
    const { packet, transactionId } = bindingRequest(change);
    const key = transactionId.toString('hex');
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout;
      let attempt = 0;
      const send = () => {
        if (attempt++ >= tries) {
          this.waiting.delete(key);
          return resolve(undefined);
        }
        this.socket.send(packet, to.port, to.address);
        timer = setTimeout(send, 250 * 2 ** attempt);
      };
      this.waiting.set(key, (r) => {
        clearTimeout(timer);
        this.waiting.delete(key);
        resolve(r);
      });
      send();
    });
  }

  close(): void {
    this.socket.close();
  }
}

export async function diagnose(server: Endpoint, localAddress?: string): Promise<NatReport> {
  const p = new Prober();
  const local = await p.open(localAddress);
  const report: NatReport = { server, local, problems: [], advice: '' };
  try {
    const t1 = await p.request(server);
    if (!t1?.mapped) {
      report.problems.push(`no answer from the STUN server ${server.address}:${server.port} (UDP blocked, or wrong address)`);
      report.advice = 'UDP does not get out: publishers here need TURN over TCP or TLS (turn:...?transport=tcp, turns:...).';
      return report;
    }
    report.mapped = t1.mapped;
    // No NAT when the server sees one of this machine's own addresses and the same port.
    const own = Object.values(networkInterfaces()).flat().map((i) => i?.address);
    report.natPresent = !(own.includes(t1.mapped.address) && t1.mapped.port === local.port);
    const other = t1.other;
    if (!other) {
      report.problems.push('the server gives no OTHER-ADDRESS: it does not support RFC 5780 (coturn needs two listening IPs)');
    } else {
      // Mapping: does the mapped address change with the destination?
      const t2 = await p.request({ address: other.address, port: server.port });
      if (!t2?.mapped) report.problems.push(`no answer from the alternate address ${other.address}:${server.port}`);
      else if (same(t2.mapped, t1.mapped)) report.mapping = 'endpoint-independent';
      else {
        const t3 = await p.request(other);
        if (!t3?.mapped) report.problems.push(`no answer from the alternate address ${other.address}:${other.port}`);
        else report.mapping = same(t3.mapped, t2.mapped) ? 'address-dependent' : 'address-and-port-dependent';
      }
      // Filtering: which unsolicited answers come back in?
      const f2 = await p.request(server, { ip: true, port: true }, 3);
      if (f2) report.filtering = 'endpoint-independent';
      else {
        const f3 = await p.request(server, { port: true }, 3);
        report.filtering = f3 ? 'address-dependent' : 'address-and-port-dependent';
      }
    }
    report.advice = advise(report);
    return report;
  } finally {
    p.close();
  }
}

function advise(r: NatReport): string {
  const lines = [
    'To a gateway with a public (or 1:1 NAT) address, publishing works directly whatever this NAT does: the publisher sends first.',
  ];
  if (r.natPresent === false) lines.push('This machine is not behind a NAT.');
  else if (r.mapping === 'endpoint-independent') {
    lines.push('Mapping is endpoint-independent ("cone"): even a gateway behind its own NAT is reached directly (STUN, hole punching).');
  } else if (r.mapping) {
    lines.push(`Mapping is ${r.mapping} ("symmetric"): a gateway that is itself behind a NAT can only be reached through TURN; configure ice.turnUrls.`);
  }
  if (r.filtering && r.filtering !== 'endpoint-independent') lines.push(`Filtering is ${r.filtering}: only answers to what was sent get in (normal for home and office routers).`);
  return lines.join(' ');
}

export function formatReport(r: NatReport): string {
  const ep = (e?: Endpoint) => (e ? `${e.address}:${e.port}` : 'unknown');
  return [
    `STUN server:  ${ep(r.server)}`,
    `local:        ${ep(r.local)}`,
    `mapped:       ${ep(r.mapped)}${r.natPresent === false ? ' (no NAT)' : ''}`,
    `mapping:      ${r.mapping ?? 'unknown'}`,
    `filtering:    ${r.filtering ?? 'unknown'}`,
    ...r.problems.map((p) => `problem:      ${p}`),
    '',
    r.advice,
  ].join('\n');
}
