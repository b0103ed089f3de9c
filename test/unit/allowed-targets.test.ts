import { describe, expect, it } from 'vitest';
import { PushTargetError } from '../../src/egress/push-url.js';
import { PushTargetRefused, PushTargets, targetEntryProblem } from '../../src/egress/allowed-targets.js';

// push.allowedTargets: URL patterns matched part by part (a * stays in its part), every
// address of a name allowed, and ffmpeg given the checked address (rtmp(s) keeps a name
// the list names). Names resolve through a fixed table: no DNS is asked.

const DNS: Record<string, string[]> = {
  'a.ingest.invalid': ['198.51.100.20'],
  'x.ingest.invalid': ['198.51.100.21'],
  'ingest.example.com': ['198.51.100.30'],
  'edge.cdn.invalid': ['198.51.100.31', '2001:db8::31'],
  'inner.cdn.invalid': ['198.51.100.32', '10.0.0.8'],
  'good.invalid': ['198.51.100.7', '198.51.100.8'],
  'mixed.invalid': ['198.51.100.7', '203.0.113.9'],
  'mixed6.invalid': ['198.51.100.7', '2001:db8:ffff::9'],
  'rebind.invalid': ['198.51.100.7'],
};
const resolve = async (host: string) => DNS[host] ?? [];

/** The PushTargetRefused (403) or PushTargetError (400) message for `url`, or 'allowed'. */
async function verdict(targets: PushTargets, url: string): Promise<string> {
  try {
    await targets.pin(url);
    return 'allowed';
  } catch (e) {
    if (e instanceof PushTargetRefused) return `403 ${e.message}`;
    if (e instanceof PushTargetError) return `400 ${e.message}`;
    throw e;
  }
}

describe('push targets: URL patterns', () => {
  const targets = new PushTargets(['rtmp://*.ingest.invalid/app/*'], true, resolve);

  it('match the host only within the host: an address with the pattern in its path is refused', async () => {
    expect(await verdict(targets, 'rtmp://203.0.113.9/x.ingest.invalid/app/k')).toBe('403 203.0.113.9 is not an allowed push target (push.allowedTargets)');
    expect(await verdict(targets, 'rtmp://203.0.113.9/a.ingest.invalid/app/k')).toMatch(/^403 /);
    expect(await verdict(targets, 'rtmp://allowed.ingest.invalid@203.0.113.9/app/k')).toMatch(/^403 203\.0\.113\.9 is not an allowed/);
    expect(await verdict(targets, 'rtmp://x.ingest.invalid.203.0.113.9.invalid/app/k')).toMatch(/^40[03] /);
    expect(await verdict(targets, 'rtmp://ingest.invalid/app/k')).toMatch(/^40[03] /);
  });

  it('match scheme, port and path each on its own; the query is not matched', async () => {
    expect(await verdict(targets, 'rtmp://a.ingest.invalid/app/key')).toBe('allowed');
    expect(await verdict(targets, 'rtmp://A.Ingest.Invalid/app/key')).toBe('allowed');
    expect(await verdict(targets, 'rtmp://a.ingest.invalid:1936/app/key')).toBe('allowed'); // no port in the pattern: any
    expect(await verdict(targets, 'rtmp://a.ingest.invalid/app/key?vhost=x')).toBe('allowed');
    expect(await verdict(targets, 'rtmp://a.ingest.invalid/other/app/key')).toMatch(/^403 a\.ingest\.invalid is not an allowed push target/);
    expect(await verdict(targets, 'rtmp://a.ingest.invalid/app')).toMatch(/^403 /);
    expect(await verdict(targets, 'rtmps://a.ingest.invalid/app/key')).toMatch(/^403 /);
    expect(await verdict(targets, 'srt://a.ingest.invalid:9000')).toMatch(/^403 /);

    const ported = new PushTargets(['rtmp://ingest.example.com:1935/live/*', 'srt://ingest.example.com:*', 'udp://[2001:db8::1]:5000'], true, resolve);
    expect(await verdict(ported, 'rtmp://ingest.example.com/live/k')).toBe('allowed'); // 1935 is rtmp's default
    expect(await verdict(ported, 'rtmp://ingest.example.com:1936/live/k')).toMatch(/^403 /);
    expect(await verdict(ported, 'srt://ingest.example.com:9123?latency=200')).toBe('allowed');
    expect(await verdict(ported, 'udp://[2001:0db8:0:0::1]:5000')).toBe('allowed');
    expect(await verdict(ported, 'udp://[2001:db8::1]:5002')).toMatch(/^403 /);
  });

  it('look-alikes that ffmpeg would read otherwise are 400s before any matching', async () => {
    for (const url of ['rtmp://a.ingest.invalid./app/k', 'rtmp://a.ingest.invalid#@203.0.113.9/app/k', 'rtmp://a.ingest.invalid/app/%2e%2e/k', 'RTMP://a.ingest.invalid/app/k', 'rtmp://a.ingest.invalid:99999/app/k', 'rtmp://a.ingest.invalid\\@203.0.113.9/app/k', 'rtmp://a%2eingest.invalid/app/k']) {
      expect(await verdict(targets, url), url).toMatch(/^400 /);
    }
  });
});

describe('push targets: every address of a name', () => {
  it('must be allowed: one listed and one unlisted address is refused, naming the unlisted one', async () => {
    const targets = new PushTargets(['198.51.100.0/24'], true, resolve);
    expect(await verdict(targets, 'udp://mixed.invalid:5000')).toBe('403 mixed.invalid resolves to 203.0.113.9 too, which is not an allowed push target (push.allowedTargets): every address of a name must be allowed');
    expect(await verdict(targets, 'srt://mixed6.invalid:9000')).toMatch(/^403 mixed6\.invalid resolves to 2001:db8:ffff::9 too/);
    expect(await verdict(targets, 'udp://good.invalid:5000')).toBe('allowed');
    expect(await verdict(targets, 'udp://unknown.invalid:5000')).toBe('400 push target host unknown.invalid does not resolve');
  });

  it('a name the list matches leads to public addresses, and to private ones only when named exactly or listed', async () => {
    const targets = new PushTargets(['*.cdn.invalid', 'ingest.example.com'], true, resolve);
    expect(await verdict(targets, 'rtmp://edge.cdn.invalid/app/k')).toBe('allowed');
    expect(await verdict(targets, 'rtmp://inner.cdn.invalid/app/k')).toBe('403 inner.cdn.invalid resolves to 10.0.0.8, a loopback, link-local or private address: list it in push.allowedTargets to allow it');
    expect(await verdict(new PushTargets(['inner.cdn.invalid'], true, resolve), 'rtmp://inner.cdn.invalid/app/k')).toBe('allowed');
    expect(await verdict(new PushTargets(['*.cdn.invalid', '10.0.0.0/8'], true, resolve), 'rtmp://inner.cdn.invalid/app/k')).toBe('allowed');
  });

  it('IPv4-mapped IPv6 addresses are the IPv4 addresses they hold, in either spelling', async () => {
    const targets = new PushTargets(['198.51.100.0/24', '*'], true, resolve);
    expect(await verdict(targets, 'udp://[::ffff:198.51.100.7]:5000')).toBe('allowed');
    expect(await verdict(targets, 'udp://[::ffff:10.1.2.4]:5000')).toMatch(/^403 .*10\.1\.2\.4, a loopback, link-local or private address/);
    expect(await verdict(targets, 'udp://[::ffff:a01:204]:5000')).toMatch(/^403 .*private address/);
  });

  it('are checked again at every pin: a name that moves to an unlisted address is refused then', async () => {
    let answer = ['198.51.100.7'];
    const targets = new PushTargets(['198.51.100.0/24'], true, async () => answer);
    expect((await targets.pin('udp://rebind.invalid:5000')).url).toBe('udp://198.51.100.7:5000');
    answer = ['192.168.1.10'];
    expect(await verdict(targets, 'udp://rebind.invalid:5000')).toMatch(/^403 rebind\.invalid is not an allowed push target/);
  });
});

describe('push targets: what ffmpeg is given', () => {
  it('udp, srt and rtp get the checked address in place of the name, every other character as given', async () => {
    const targets = new PushTargets(['198.51.100.0/24', '2001:db8::/32'], true, resolve);
    expect(await targets.pin('udp://good.invalid:5000?pkt_size=1316')).toEqual({ addresses: ['198.51.100.7', '198.51.100.8'], address: '198.51.100.7', url: 'udp://198.51.100.7:5000?pkt_size=1316' });
    expect((await targets.pin('srt://good.invalid:9000?mode=caller&streamid=#!::r=live/cam')).url).toBe('srt://198.51.100.7:9000?mode=caller&streamid=#!::r=live/cam');
    expect((await targets.pin('rtp://good.invalid:5004')).address).toBe('198.51.100.7');
    expect((await targets.pin('udp://[2001:db8::5]:5000')).url).toBe('udp://[2001:db8::5]:5000');
  });

  it('rtmp(s) keeps a name the list names (TLS, tcUrl); one allowed only by address gets the address (rtmp) or is refused (rtmps)', async () => {
    const named = new PushTargets(['ingest.example.com', 'rtmp://*.ingest.invalid/app/*'], true, resolve);
    expect(await named.pin('rtmps://ingest.example.com/app/key')).toEqual({ addresses: ['198.51.100.30'], address: '198.51.100.30', url: 'rtmps://ingest.example.com/app/key' });
    expect((await named.pin('rtmp://u:p@a.ingest.invalid/app/key?x=1')).url).toBe('rtmp://u:p@a.ingest.invalid/app/key?x=1');

    const byAddress = new PushTargets(['198.51.100.0/24'], true, resolve);
    expect((await byAddress.pin('rtmp://good.invalid/app/key')).url).toBe('rtmp://198.51.100.7/app/key');
    expect(await verdict(byAddress, 'rtmps://good.invalid/app/key')).toMatch(/^403 good\.invalid is allowed only by its addresses: list the name itself in push\.allowedTargets for rtmps/);
    expect((await byAddress.pin('rtmps://198.51.100.7/app/key')).url).toBe('rtmps://198.51.100.7/app/key');
  });

  it('with no list in force: any address but the unspecified one; rtmp keeps its name, the others get the address', async () => {
    const open = new PushTargets([], false, async (host) => (host === 'zero.invalid' ? ['0.0.0.0'] : ['203.0.113.50']));
    expect((await open.pin('udp://any.invalid:5000')).url).toBe('udp://203.0.113.50:5000');
    expect((await open.pin('rtmp://any.invalid/app/k')).url).toBe('rtmp://any.invalid/app/k');
    expect(await verdict(open, 'srt://zero.invalid:9000')).toMatch(/^400 .*unspecified/);
  });
});

describe('push.allowedTargets entries', () => {
  it('are hosts, host patterns, addresses, CIDR ranges or URL patterns without a query', () => {
    for (const ok of ['ingest.example.com', '*.example.com', '203.0.113.7', '10.0.0.0/8', '2001:db8::/32', 'rtmp://a.rtmp.youtube.com/live2/*', 'srt://ingest.example.com:*', 'rtmp://[2001:db8::1]:1935/live/*', 'rtmp://*']) {
      expect(targetEntryProblem(ok), ok).toBeUndefined();
    }
    expect(targetEntryProblem('rtmp://ingest.example.com/app?key=*')).toMatch(/leave out the query/);
    expect(targetEntryProblem('srt://ingest.example.com:9000*')).toMatch(/scheme:\/\/host\[:port\]/);
    expect(targetEntryProblem('10.0.0.0/33')).toMatch(/prefix length/);
    expect(targetEntryProblem('rtmp://a@b/app')).toMatch(/scheme:\/\/host/);
    expect(targetEntryProblem('bad entry!')).toMatch(/a host \(name or pattern\)/);
    expect(() => new PushTargets(['srt://x:0'], true)).toThrow(/push\.allowedTargets: srt:\/\/x:0: the port must be from 1 to 65535/);
  });
});
