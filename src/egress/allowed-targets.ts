import { BlockList, isIP } from 'node:net';
import { matchesPattern } from '../config/wildcard.js';
import { parsePushUrl, PushTargetError, resolvePushHost, systemResolver, withHost, type PushUrl, type Resolver } from './push-url.js';

// Where outputs may send media. An output that pushes (rtmp, srt, udp) or forwards (rtp,
// rtp-mpegts) makes the gateway send a few Mbit/s to a host its caller names; left open,
// anyone with the control right could aim it at any machine, including ones only the
// gateway can reach. So, while auth is on or push.allowedTargets is set:
// - the target must match an entry: a URL pattern ("rtmp://a.rtmp.youtube.com/live2/*"),
//   a host ("ingest.example.com", "*.example.com"), an address or a CIDR range. A URL
//   pattern is matched part by part against the URL as ffmpeg reads it (push-url.ts):
//   the scheme, the host (a '*' there stays within the host), the port (rtmp's 1935 and
//   rtmps's 443 also match a URL that names none) and the path (a '*' there stays within
//   the path). A port or path the pattern leaves out is any; the query is never matched
//   (its options are checked by push-url.ts). Matching the whole text let
//   rtmp://*.ingest.invalid/app/* accept rtmp://203.0.113.9/x.ingest.invalid/app/k;
// - EVERY address the host resolves to must be allowed: listed by address or range, or
//   reached through a name the list matches. A loopback, link-local or private (or
//   otherwise not public) address needs more: its address or range listed, or the exact
//   host name (a wildcard does not let a name lead into the private network). With "any
//   address allowed", a name resolving to one listed and one unlisted address sent
//   ffmpeg's 100+ KB to the unlisted one;
// - ffmpeg is then given the address that was checked, not the name (withHost), so a
//   second lookup cannot lead elsewhere: for udp, rtp, rtp-mpegts and srt always.
//   RTMP is the exception. The name matters there: rtmps needs it for TLS (SNI, and the
//   certificate), and ffmpeg builds the tcUrl from it, which ingest servers use to pick a
//   virtual host (SRS, CDNs). So an rtmp(s) URL keeps its name when the list names it
//   (by host, host pattern or URL pattern): the operator vouches for that name's DNS, and
//   it is checked again, every address allowed, right before each (re)start. One allowed
//   only through its addresses (a range) is not trusted to keep pointing there (DNS
//   rebinding: our lookup and ffmpeg's could differ), so rtmp gets the checked address
//   instead (the tcUrl then carries it), and rtmps, which cannot work without its name,
//   is refused with a message saying to list the name. With no list in force (auth off,
//   no push.allowedTargets), any address but the unspecified one is allowed anyway, and
//   rtmp keeps its name.
// Names are resolved before the check, and again before every (re)connect.

/** Addresses that are not on the public internet. */
const SPECIAL = new BlockList();
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) SPECIAL.addSubnet(net, bits, 'ipv4');
// ::/96: the unspecified and loopback addresses, and the deprecated IPv4-compatible ones.
// (IPv4-mapped ones, ::ffff:a.b.c.d, BlockList checks against the IPv4 rules itself.)
for (const [net, bits] of [['::', 96], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) SPECIAL.addSubnet(net, bits, 'ipv6');

/** Where a URL that names no port connects (ffmpeg's defaults for rtmp and rtmps). */
const DEFAULT_PORTS: Record<string, number> = { rtmp: 1935, rtmps: 443 };
/** Schemes whose URL keeps a host name the list names (see above). */
const NAME_SCHEMES = new Set(['rtmp', 'rtmps']);

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

/** A target as it was checked: where to send, now. */
export interface PinnedTarget {
  /** Every address the host resolves to now (all of them allowed). */
  addresses: string[];
  /** The address to send to: the first of them. */
  address: string;
  /** The URL to give ffmpeg: its host replaced by `address`, or (rtmp, rtmps) the name the list names. */
  url: string;
}

/** A URL entry of push.allowedTargets, by part. */
interface UrlPattern {
  scheme: string;
  /** Lower case; an IPv6 address without brackets. */
  host: string;
  /** undefined or '*': any. */
  port?: number | '*';
  /** undefined: any path (the pattern names none). */
  path?: string;
}

/** Why `entry` cannot be a push.allowedTargets entry, or undefined (the configuration schema asks). */
export function targetEntryProblem(entry: string): string | undefined {
  const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
  if (cidr && isIP(cidr[1])) return Number(cidr[2]) <= (isIP(cidr[1]) === 6 ? 128 : 32) ? undefined : `${entry}: the prefix length is too long`;
  if (isIP(entry)) return undefined;
  if (entry.includes('://')) {
    const p = parseUrlPattern(entry);
    return typeof p === 'string' ? `${entry}: ${p}` : undefined;
  }
  return /^[A-Za-z0-9*_.-]+$/.test(entry) ? undefined : `${entry}: a host (name or pattern), an address, a CIDR range or a URL pattern (scheme://host[:port]/path)`;
}

function parseUrlPattern(entry: string): UrlPattern | string {
  if (/[?#]/.test(entry)) return 'a URL pattern matches scheme, host, port and path: leave out the query (push options are checked, not matched)';
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9*_.-]+)(?::(\d{1,5}|\*))?(\/.*)?$/.exec(entry);
  if (!m) return 'a URL pattern is scheme://host[:port][/path], with * in the host, the path, or as the port';
  const host = m[2].replace(/^\[|\]$/g, '').toLowerCase();
  if (m[2].startsWith('[') && isIP(host) !== 6) return `${m[2]} is not an IPv6 address`;
  const port = m[3] === undefined ? undefined : m[3] === '*' ? '*' : Number(m[3]);
  if (typeof port === 'number' && (port < 1 || port > 65535)) return 'the port must be from 1 to 65535';
  return { scheme: m[1].toLowerCase(), host, port, path: m[4] };
}

function urlPatternMatches(p: UrlPattern, url: PushUrl): boolean {
  if (p.scheme !== url.scheme) return false;
  const host = isIP(p.host) ? sameAddress(p.host, url.host) : matchesPattern(p.host, url.host);
  if (!host) return false;
  if (typeof p.port === 'number' && p.port !== (url.port ?? DEFAULT_PORTS[url.scheme])) return false;
  return p.path === undefined || matchesPattern(p.path, url.path);
}

/** The same IP address, however written (2001:db8::1 and 2001:0db8:0:0:0:0:0:1). */
function sameAddress(a: string, b: string): boolean {
  if (!isIP(b) || family(a) !== family(b)) return false;
  const list = new BlockList();
  list.addAddress(a, family(a));
  return list.check(b, family(b));
}

export class PushTargets {
  /** Addresses and CIDR ranges from the list. */
  private readonly ranges = new BlockList();
  private readonly urlPatterns: UrlPattern[] = [];
  private readonly hostPatterns: string[] = [];

  /**
   * @param restricted whether the list applies (auth on, or a list configured); otherwise
   *   any target is allowed but the unspecified address.
   * @param resolve how host names are looked up (tests give a fixed table).
   */
  constructor(
    readonly allowed: string[],
    readonly restricted: boolean,
    private readonly resolve: Resolver = systemResolver,
  ) {
    for (const entry of allowed) {
      const problem = targetEntryProblem(entry);
      if (problem) throw new Error(`push.allowedTargets: ${problem}`);
      const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
      if (cidr && isIP(cidr[1])) this.ranges.addSubnet(cidr[1], Number(cidr[2]), family(cidr[1]));
      else if (isIP(entry)) this.ranges.addAddress(entry, family(entry));
      else if (entry.includes('://')) this.urlPatterns.push(parseUrlPattern(entry) as UrlPattern);
      else this.hostPatterns.push(entry.toLowerCase());
    }
  }

  /** The addresses `url` resolves to now, when it may be sent to; otherwise throws PushTargetError naming why. */
  async check(url: string): Promise<string[]> {
    return (await this.pin(url)).addresses;
  }

  /**
   * Where `raw` may be sent now, and the URL to give ffmpeg for it; otherwise throws
   * PushTargetError naming why (shown to the API caller): PushTargetRefused for a target
   * the list does not allow.
   */
  async pin(raw: string): Promise<PinnedTarget> {
    const url = parsePushUrl(raw);
    if (typeof url === 'string') throw new PushTargetError(url);
    const addresses = await resolvePushHost(url, this.resolve);
    const host = url.host;
    const named = !this.restricted || this.hostPatterns.some((p) => matchesPattern(p, host)) || this.urlPatterns.some((p) => urlPatternMatches(p, url));
    if (this.restricted) {
      const namedExactly = this.hostPatterns.includes(host) || this.urlPatterns.some((p) => !p.host.includes('*') && urlPatternMatches(p, url));
      const listed = (a: string) => this.ranges.check(plain(a), family(plain(a)));
      const refused = addresses.filter((a) => !listed(a) && !(named && (!isSpecialAddress(a) || namedExactly)));
      if (!named && refused.length === addresses.length) throw new PushTargetRefused(`${host} is not an allowed push target (push.allowedTargets)`);
      const inner = refused.find((a) => named && isSpecialAddress(a));
      if (inner) throw new PushTargetRefused(`${host} resolves to ${inner}, a loopback, link-local or private address: list it in push.allowedTargets to allow it`);
      if (refused.length > 0) throw new PushTargetRefused(`${host} resolves to ${refused[0]} too, which is not an allowed push target (push.allowedTargets): every address of a name must be allowed`);
    }
    const address = addresses[0];
    if (url.ipVersion || !NAME_SCHEMES.has(url.scheme)) return { addresses, address, url: withHost(url, address) };
    if (named) return { addresses, address, url: withHost(url, host) };
    if (url.scheme === 'rtmps') {
      throw new PushTargetRefused(`${host} is allowed only by its addresses: list the name itself in push.allowedTargets for rtmps (TLS needs the name, so ffmpeg looks it up again, and only a listed name is trusted to keep to allowed addresses)`);
    }
    return { addresses, address, url: withHost(url, address) };
  }
}
