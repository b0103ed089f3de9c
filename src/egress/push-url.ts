import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

// Push targets (srt://, udp://, rtmp://...) come from API callers and end up in ffmpeg's
// command line, so they are read here the way ffmpeg 5.1 will read them, and refused
// when that reading could differ from what was checked:
// - ffmpeg splits a URL with av_url_split (libavformat/utils.c): the scheme up to the
//   first ':', the host up to the first '/', '?' or '#', after the last '@', with a port
//   after ':' (atoi) or after "[v6]:"; each protocol then reads its options from the
//   first '?' anywhere in the text (strchr), as "key=value&key..." with no decoding but
//   '+' for a space (av_find_info_tag). '#' means nothing to it: it only ends the host,
//   so srt://10.20.0.5:9100#?mode=listener is host 10.20.0.5 with mode=listener, where
//   the WHATWG URL parser saw a fragment and no options. So this is a parser of its own,
//   and what could be read two ways is refused rather than guessed at: '#' before the
//   options (after the '?' it is part of a value, as in SRT's streamid=#!::r=live/cam),
//   backslashes, a second '?', user information (but rtmp's user:password), more than
//   one '@', percent-encoding in the host, numeric hosts that are not dotted quads (127.1,
//   0x7f.1: the resolver reads them as addresses), trailing dots in host names, ports
//   outside 1-65535, '.' and '..' path segments, encoded dots and slashes;
// - no spaces, control characters or non-ASCII: the WHATWG parser drops tabs and newlines
//   ("u\tdp:x" read as "udp:x"), and ffmpeg then took the text for a file name;
// - the scheme is one the pipeline pushes with, in lower case (ffmpeg compares it exactly);
// - a host is named, and it is not the unspecified address (0.0.0.0, ::);
// - no listener mode and no chosen local port, in whatever case or encoding: srt
//   mode=listener or rendezvous (any mode but caller), listen / listen_timeout (tcp,
//   rtmp's option), localport, local_port, localrtpport, localrtcpport (udp, rtp, tcp):
//   each opens or binds a port on this machine instead of only sending, unless the
//   configuration allows it (push.allowListeners). Options after a '#' cannot slip past:
//   ffmpeg reads none before the '?', and after it a '#' is part of a value.
// The host is resolved before every (re)connect (allowed-targets.ts), and ffmpeg is given
// the address that was checked (withHost), not the name.

export interface PushUrlRules {
  protocols: string[];
  allowListeners: boolean;
}

/** A push URL as ffmpeg reads it. */
export interface PushUrl {
  scheme: string;
  /** rtmp's user[:password] before '@', as given. */
  userinfo?: string;
  /** A host name in lower case, or an IP address (IPv6 without brackets). */
  host: string;
  /** 4 or 6 when the host is an IP address, 0 for a name. */
  ipVersion: 0 | 4 | 6;
  port?: number;
  /** From the '/' after the host up to the '?', as given ('' when there is none). */
  path: string;
  /** What follows the '?', as given. */
  query?: string;
  /** The query as ffmpeg reads it: split at '&', the key up to '=', '+' a space. */
  options: { key: string; value: string }[];
}

/** Schemes whose user information ffmpeg uses (rtmp's user:password login); elsewhere '@' only hides the real host. */
const USERINFO_SCHEMES = new Set(['rtmp', 'rtmps']);
/** Options that open or bind a port on this machine (lower case, decoded). */
const LISTEN_OPTIONS = new Set(['listen', 'listen_timeout', 'rtmp_listen']);
const LOCAL_PORT_OPTIONS = new Set(['localport', 'local_port', 'localrtpport', 'localrtcpport']);

/** `raw` read as ffmpeg reads it, or why it cannot be used. `protocols` undefined: any scheme. */
export function parsePushUrl(raw: string, protocols?: string[]): PushUrl | string {
  const schemes = protocols ? `a ${protocols.map((x) => `${x}://`).join(' or ')} URL` : 'a URL';
  if (/[\s\x00-\x1f\x7f]/.test(raw)) return 'must not contain spaces or control characters';
  if (/[^\x21-\x7e]/.test(raw)) return 'must be plain ASCII (an international host name in its xn-- form)';
  if (raw.includes('\\')) return 'must not contain backslashes';
  const q = raw.indexOf('?');
  if ((q < 0 ? raw : raw.slice(0, q)).includes('#')) return 'must not contain # before the options (ffmpeg has no fragments: it reads the options after it, as in srt://host:port#?mode=listener)';
  const head = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw);
  if (!head) return `must be ${schemes}`;
  const scheme = head[1];
  if (protocols && !protocols.includes(scheme.toLowerCase())) return `must be ${schemes}`;
  if (scheme !== scheme.toLowerCase()) return `the scheme must be written in lower case (${scheme.toLowerCase()}://): ffmpeg does not know ${scheme}://`;

  const rest = raw.slice(head[0].length);
  const authorityEnd = rest.search(/[/?]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const tail = authorityEnd < 0 ? '' : rest.slice(authorityEnd);
  const queryAt = tail.indexOf('?');
  const path = queryAt < 0 ? tail : tail.slice(0, queryAt);
  const query = queryAt < 0 ? undefined : tail.slice(queryAt + 1);

  let hostPort = authority;
  let userinfo: string | undefined;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    if (!USERINFO_SCHEMES.has(scheme)) return `must not contain user information (@): ffmpeg would push to what follows the @, ${authority.slice(at + 1) || 'nothing'}`;
    if (authority.indexOf('@') !== at) return 'must not contain more than one @';
    userinfo = authority.slice(0, at);
    if (!userinfo) return 'must not have an empty user name before @';
    hostPort = authority.slice(at + 1);
  }

  let host: string;
  let portText: string | undefined;
  if (hostPort.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(hostPort);
    if (!m || isIP(m[1]) !== 6 || m[1].includes('%')) return 'must write an IPv6 host as [address] (no zone), optionally followed by :port';
    host = m[1].toLowerCase();
    if (isUnspecified(host)) return `must name the host to push to, not ${host} (the unspecified address)`;
    portText = m[2];
  } else {
    if (hostPort.split(':').length > 2) return 'must write an IPv6 host in brackets ([2001:db8::1]:port)';
    const colon = hostPort.indexOf(':');
    host = colon < 0 ? hostPort : hostPort.slice(0, colon);
    portText = colon < 0 ? undefined : hostPort.slice(colon + 1);
    const problem = hostNameProblem(host);
    if (problem) return problem;
    host = host.toLowerCase();
  }
  let port: number | undefined;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return `the port must be a number from 1 to 65535, not "${portText}"`;
    port = Number(portText);
  }

  if (/%(?![0-9a-f]{2})/i.test(path)) return 'must not contain a % that is not followed by two hex digits';
  if (/%(2e|2f|5c|00)/i.test(path)) return 'must not percent-encode dots, slashes, backslashes or NUL in the path';
  if (/(^|\/)\.\.?(\/|$)/.test(path)) return 'must not contain . or .. path segments';
  if (query?.includes('?')) return 'must not contain a second ? (ffmpeg would read it as part of an option)';
  const options = (query ?? '')
    .split('&')
    .filter(Boolean)
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq < 0 ? { key: pair, value: '' } : { key: pair.slice(0, eq), value: pair.slice(eq + 1).replace(/\+/g, ' ') };
    });
  return { scheme, userinfo, host, ipVersion: isIP(host) as 0 | 4 | 6, port, path, query, options };
}

/** Why `raw` is not an acceptable push URL, or undefined when it is. */
export function pushUrlProblem(raw: string, rules: PushUrlRules): string | undefined {
  const url = parsePushUrl(raw, rules.protocols);
  if (typeof url === 'string') return url;
  return rules.allowListeners ? undefined : listenerProblem(url);
}

/** Why `url` would open or bind a port on this machine, or undefined. */
function listenerProblem(url: PushUrl): string | undefined {
  const allow = 'push.allowListeners allows it';
  for (const { key, value } of url.options) {
    // ffmpeg compares keys and values exactly and decodes nothing; these are compared in
    // any case and decoded too, so that no spelling of them passes.
    const k = loosely(key);
    const v = loosely(value).trim();
    if (k === 'mode' && v !== 'caller') return `must push to a listener, not listen itself (mode=${value} would open a port on this machine; only mode=caller pushes; ${allow})`;
    if (LISTEN_OPTIONS.has(k)) return `must push to a listener, not listen itself (${key} would open a port on this machine; ${allow})`;
    if (LOCAL_PORT_OPTIONS.has(k)) return `must not choose a local port (${key} binds a port on this machine; ${allow})`;
  }
  return undefined;
}

function loosely(text: string): string {
  try {
    return decodeURIComponent(text).toLowerCase();
  } catch {
    return text.toLowerCase();
  }
}

/** Why `host` (no brackets, no port) is not a host name or IPv4 address ffmpeg and the resolver read alike. */
function hostNameProblem(host: string): string | undefined {
  if (!host) return 'must name the host to push to';
  if (host.includes('%')) return 'must not percent-encode the host';
  if (isUnspecified(host)) return `must name the host to push to, not ${host} (the unspecified address)`;
  if (isIP(host) === 4) return undefined;
  if (host.endsWith('.')) return `must not end the host name with a dot (${host})`;
  const labels = host.split('.');
  if (host.length > 253 || labels.some((l) => !/^[A-Za-z0-9_-]{1,63}$/.test(l))) return `must name the host as letters, digits, '-' and '_' between dots, not ${host}`;
  if (/^(\d+|0x[0-9a-f]*)$/i.test(labels[labels.length - 1])) return `must write an IPv4 host as four decimal numbers (a.b.c.d), not ${host}`;
  return undefined;
}

/** The URL with `host` (a name or an address) in place of its host; every other character as given. */
export function withHost(url: PushUrl, host: string): string {
  const h = isIP(host) === 6 ? `[${host}]` : host;
  return `${url.scheme}://${url.userinfo !== undefined ? `${url.userinfo}@` : ''}${h}${url.port !== undefined ? `:${url.port}` : ''}${url.path}${url.query !== undefined ? `?${url.query}` : ''}`;
}

export class PushTargetError extends Error {}

/** Looks a host name up: every address it has now. */
export type Resolver = (host: string) => Promise<string[]>;

export const systemResolver: Resolver = async (host) => (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);

/** Looks the host up now (before ffmpeg connects); refuses names that lead nowhere acceptable. */
export async function resolvePushHost(target: PushUrl | string, resolve: Resolver = systemResolver): Promise<string[]> {
  const url = typeof target === 'string' ? parsePushUrl(target) : target;
  if (typeof url === 'string') throw new PushTargetError(url);
  const host = url.host;
  const addresses = url.ipVersion ? [host] : [...new Set(await resolve(host))];
  if (addresses.length === 0) throw new PushTargetError(`push target host ${host} does not resolve`);
  const bad = addresses.find(isUnspecified);
  if (bad) throw new PushTargetError(`push target host ${host} resolves to ${bad} (the unspecified address)`);
  return addresses;
}

function isUnspecified(address: string): boolean {
  return /^0+(\.0+){0,3}$/.test(address) || /^(0*:)+0*$/.test(address) || /^::(ffff:)?0+(\.0+){3}$/i.test(address);
}
