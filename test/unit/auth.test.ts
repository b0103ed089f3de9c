import { describe, expect, it } from 'vitest';
import { FailureLimiter } from '../../src/auth/failures.js';
import { grantOf } from '../../src/auth/permissions.js';
import { authEnabled, authProblem } from '../../src/auth/policy.js';
import { Tickets } from '../../src/auth/tickets.js';
import { parseConfig } from '../../src/config/load.js';
import { withTicket } from '../../src/http/hls.js';
import { PushTargets } from '../../src/egress/allowed-targets.js';

// The pure parts of access control: which configurations may run, what a set of
// permissions allows, HLS tickets, the failure limit, and push-target rules.

describe('which configurations may start', () => {
  it('loopback without credentials runs open; any other address needs credentials or auth.mode none', () => {
    expect(authProblem(parseConfig({}))).toBeUndefined();
    expect(authEnabled(parseConfig({}))).toBe(false);
    const open = authProblem(parseConfig({ http: { host: '0.0.0.0' } }));
    expect(open).toMatch(/no credentials/);
    expect(open).toMatch(/auth\.tokens/);
    expect(open).toMatch(/auth\.mode: none/);
    expect(authProblem(parseConfig({ http: { host: '0.0.0.0' }, auth: { mode: 'none' } }))).toBeUndefined();
    const withToken = parseConfig({ http: { host: '0.0.0.0' }, auth: { tokens: [{ token: 'a-long-enough-token', permissions: [{ action: 'read' }] }] } });
    expect(authProblem(withToken)).toBeUndefined();
    expect(authEnabled(withToken)).toBe(true);
  });

  it('CORS "*" is refused while auth is on', () => {
    const tokens = [{ token: 'a-long-enough-token', permissions: [{ action: 'read' as const }] }];
    expect(authProblem(parseConfig({ http: { corsOrigins: ['*'] }, auth: { tokens } }))).toMatch(/corsOrigins "\*" is only allowed while auth is off/);
    expect(authProblem(parseConfig({ http: { corsOrigins: ['https://studio.example.com'] }, auth: { tokens } }))).toBeUndefined();
  });

  it('refuses short tokens, a JWT with both or neither of secret and jwksUrl, and ICE addresses that are not IPs', () => {
    expect(() => parseConfig({ auth: { tokens: [{ token: 'short', permissions: [{ action: 'read' }] }] } })).toThrow(/at least 12/);
    expect(() => parseConfig({ auth: { jwt: {} } })).toThrow(/exactly one of secret and jwksUrl/);
    expect(() => parseConfig({ ice: { addresses: ['not-an-ip'] } })).toThrow(/must be an IP address/);
  });
});

describe('permissions', () => {
  const grant = grantOf([
    { action: 'publish', streams: 'studio-*' },
    { action: 'control', streams: 'studio-1' },
  ]);

  it('allow their action on matching streams only; control brings metrics', () => {
    expect(grant.allows('publish', 'studio-7')).toBe(true);
    expect(grant.allows('publish', 'other')).toBe(false);
    expect(grant.allows('read', 'studio-7')).toBe(false);
    expect(grant.allows('control', 'studio-1')).toBe(true);
    expect(grant.allows('control', 'studio-2')).toBe(false);
    expect(grant.allows('metrics')).toBe(true);
    expect(grantOf([{ action: 'read', streams: '*' }]).allows('metrics')).toBe(false);
  });
});

describe('HLS tickets', () => {
  it('are valid for their stream until they expire, and cannot be forged', () => {
    const tickets = new Tickets();
    const now = Date.now();
    const ticket = tickets.issue('cam1', now);
    expect(tickets.valid('cam1', ticket, now + 60_000)).toBe(true);
    expect(tickets.valid('cam2', ticket, now)).toBe(false);
    expect(tickets.valid('cam1', ticket, now + 11 * 60_000)).toBe(false);
    expect(tickets.valid('cam1', `${ticket.split('.')[0]}.AAAA`, now)).toBe(false);
    expect(new Tickets().valid('cam1', ticket, now)).toBe(false); // another gateway's key
  });

  it('are added to every URI of a playlist: segments and the fMP4 init section', () => {
    const playlist = '#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:1.0,\nseg1.m4s\n#EXTINF:1.0,\nseg2.m4s\n';
    expect(withTicket(playlist, 'T.1')).toBe('#EXTM3U\n#EXT-X-MAP:URI="init.mp4?ticket=T.1"\n#EXTINF:1.0,\nseg1.m4s?ticket=T.1\n#EXTINF:1.0,\nseg2.m4s?ticket=T.1\n');
  });
});

describe('failure limit', () => {
  it('refuses an address after max failures until the oldest leaves the window; others go on', () => {
    const limiter = new FailureLimiter(3, 60_000);
    for (let i = 0; i < 3; i++) limiter.fail('10.0.0.1', 1000 + i);
    expect(limiter.retryAfterMs('10.0.0.1', 2000)).toBe(59_000);
    expect(limiter.retryAfterMs('10.0.0.2', 2000)).toBe(0);
    expect(limiter.retryAfterMs('10.0.0.1', 61_001)).toBe(0);
  });
});

describe('push targets', () => {
  it('without a list and with auth off: anything but the unspecified address', async () => {
    const open = new PushTargets([], false);
    await expect(open.check('rtmp://127.0.0.1/live/x')).resolves.toEqual(['127.0.0.1']);
    await expect(open.check('srt://0.0.0.0:9000')).rejects.toThrow(/unspecified/);
  });

  it('with a list: only listed hosts, ranges and URL patterns; private addresses only when named', async () => {
    const targets = new PushTargets(['203.0.113.0/24', 'rtmp://198.51.100.7/live/*', '10.1.2.3', '192.168.0.0/16'], true);
    await expect(targets.check('srt://203.0.113.9:9000')).resolves.toEqual(['203.0.113.9']);
    await expect(targets.check('rtmp://198.51.100.7/live/key')).resolves.toBeTruthy();
    await expect(targets.check('rtmp://198.51.100.7/other/key')).rejects.toThrow(/not an allowed push target/);
    await expect(targets.check('udp://10.1.2.3:5000')).resolves.toEqual(['10.1.2.3']);
    await expect(targets.check('udp://192.168.4.4:5000')).resolves.toEqual(['192.168.4.4']);
    await expect(targets.check('udp://10.1.2.4:5000')).rejects.toThrow(/not an allowed push target/);
    await expect(targets.check('udp://[::ffff:10.1.2.4]:5000')).rejects.toThrow(/not an allowed push target/);
  });

  it('a wildcard host pattern does not lead into private addresses; loopback needs listing', async () => {
    const targets = new PushTargets(['*host', 'rtmp://*'], true);
    await expect(targets.check('rtmp://localhost/live/x')).rejects.toThrow(/resolves to (127\.0\.0\.1|::1), a loopback, link-local or private address/);
    await expect(targets.check('rtmp://169.254.169.254/live/x')).rejects.toThrow(/private address/);
    await expect(new PushTargets(['localhost'], true).check('rtmp://localhost/live/x')).resolves.toBeTruthy();
  });
});
