import { BlockList, isIP } from 'node:net';
import { matchesPattern } from '../config/wildcard.js';
import { PushTargetError, resolvePushHost } from './push-url.js';

// Where outputs may send media. An output that pushes (rtmp, srt, udp) or forwards (rtp,
// rtp-mpegts) makes the gateway send a few Mbit/s to a host its caller names; left open,
// anyone with the control right could aim it at any machine, including ones only the
// gateway can reach. So, while auth is on or push.allowedTargets is set:
// - the target must match an entry: a URL pattern ("rtmp://a.rtmp.youtube.com/live2/*"),
//   a host ("ingest.example.com", "*.example.com"), an address or a CIDR range;
// - every address the host resolves to that is loopback, link-local, private (or
//   otherwise not public) must itself be listed: by address, by CIDR range, or by the
//   exact host name (a wildcard host does not let a name lead into the private network).
// Names are resolved before the check, and again before every (re)connect.

/** Addresses that are not on the public internet. */
const SPECIAL = new BlockList();
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) SPECIAL.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) SPECIAL.addSubnet(net, bits, 'ipv6');

function family(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is checked as the IPv4 address it is. */
function plain(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

/** The target is a real one, but not allowed (403, where an unusable target is a 400). */
export class PushTargetRefused extends PushTargetError {}

export function isSpecialAddress(address: string): boolean {
  const a = plain(address);
  return SPECIAL.check(a, family(a));
}

export class PushTargets {
  /** Addresses and CIDR ranges from the list. */
  private readonly ranges = new BlockList();
  private readonly urlPatterns: string[] = [];
  private readonly hostPatterns: string[] = [];

  /**
   * @param restricted whether the list applies (auth on, or a list configured); otherwise
   *   any target is allowed but the unspecified address.
   */
  constructor(
    readonly allowed: string[],
    readonly restricted: boolean,
  ) {
    for (const entry of allowed) {
      const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
      if (cidr && isIP(cidr[1])) this.ranges.addSubnet(cidr[1], Number(cidr[2]), family(cidr[1]));
      else if (isIP(entry)) this.ranges.addAddress(entry, family(entry));
      else if (entry.includes('://')) this.urlPatterns.push(entry);
      else this.hostPatterns.push(entry.toLowerCase());
    }
  }

  /**
   * The addresses `url` resolves to now, when it may be sent to; otherwise throws
   * PushTargetError naming why (shown to the API caller).
   */
  async check(url: string): Promise<string[]> {
    const addresses = await resolvePushHost(url);
    if (!this.restricted) return addresses;
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const listed = (a: string) => this.ranges.check(plain(a), family(plain(a)));
    const matches = this.urlPatterns.some((p) => matchesPattern(p, url)) || this.hostPatterns.some((p) => matchesPattern(p, host)) || addresses.some(listed);
    if (!matches) throw new PushTargetRefused(`${host} is not an allowed push target (push.allowedTargets)`);
    const namedExactly = this.hostPatterns.includes(host) || this.urlPatterns.some((p) => hostOfPattern(p) === host);
    const inner = addresses.find((a) => isSpecialAddress(a) && !listed(a) && !namedExactly);
    if (inner) throw new PushTargetRefused(`${host} resolves to ${inner}, a loopback, link-local or private address: list it in push.allowedTargets to allow it`);
    return addresses;
  }
}

/** The host of a URL pattern when it has no wildcard (rtmp://10.0.0.5/live/* -> 10.0.0.5). */
function hostOfPattern(pattern: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(\[[^\]]+\]|[^/:?*]+)(?=[/:?]|$)/i.exec(pattern);
  return m ? m[1].replace(/^\[|\]$/g, '').toLowerCase() : undefined;
}
