import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

// Push targets (srt://, udp://, rtmp://...) come from API callers and end up in ffmpeg's
// command line, so they are checked as URLs before anything runs:
// - no spaces or control characters: the WHATWG URL parser silently drops tabs and
//   newlines ("u\tdp:x" parsed as "udp:x"), and ffmpeg then treated the raw text as a
//   file name and wrote it into the gateway's working directory;
// - the scheme is one the pipeline pushes with;
// - a host is named, and it is not the unspecified address (0.0.0.0, ::);
// - no listener mode (srt mode=listener or rendezvous, listen=...): that would open a port
//   on every interface of this machine instead of pushing, unless the configuration
//   allows it (push.allowListeners).
// The host is looked up again before every (re)connect (resolvePushHost), so a name that
// starts pointing at the unspecified address is refused then too.

export interface PushUrlRules {
  protocols: string[];
  allowListeners: boolean;
}

/** Why `raw` is not an acceptable push URL, or undefined when it is. */
export function pushUrlProblem(raw: string, rules: PushUrlRules): string | undefined {
  if (/[\s\x00-\x1f\x7f]/.test(raw)) return 'must not contain spaces or control characters';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `must be a ${schemes(rules)} URL`;
  }
  if (!rules.protocols.includes(url.protocol.replace(/:$/, ''))) return `must be a ${schemes(rules)} URL`;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!host) return 'must name the host to push to';
  if (isUnspecified(host)) return `must name the host to push to, not ${host} (the unspecified address)`;
  if (!rules.allowListeners) {
    const mode = url.searchParams.get('mode')?.toLowerCase();
    if (mode === 'listener' || mode === 'rendezvous' || url.searchParams.has('listen')) {
      return 'must push to a listener, not listen itself (mode=listener/rendezvous or listen= would open a port on this machine; push.allowListeners allows it)';
    }
  }
  return undefined;
}

export class PushTargetError extends Error {}

/** Looks the host up now (before ffmpeg connects); refuses names that lead nowhere acceptable. */
export async function resolvePushHost(raw: string): Promise<string[]> {
  const host = new URL(raw).hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  if (addresses.length === 0) throw new PushTargetError(`push target host ${host} does not resolve`);
  const bad = addresses.find(isUnspecified);
  if (bad) throw new PushTargetError(`push target host ${host} resolves to ${bad} (the unspecified address)`);
  return addresses;
}

function isUnspecified(address: string): boolean {
  return address === '0.0.0.0' || /^0+(\.0+){0,3}$/.test(address) || /^(0*:)+0*$/.test(address) || address === '::';
}

function schemes(rules: PushUrlRules): string {
  return rules.protocols.map((x) => `${x}://`).join(' or ');
}
