import { describe, expect, it } from 'vitest';
import { pushUrlProblem, resolvePushHost } from '../../src/pipelines/push-url.js';

// Push URLs reach ffmpeg's command line: only real push targets pass.

const srt = { protocols: ['srt'], allowListeners: false };
const udp = { protocols: ['udp'], allowListeners: false };

describe('push URLs', () => {
  it('accepts push targets', () => {
    expect(pushUrlProblem('srt://203.0.113.5:9000?mode=caller&latency=200', srt)).toBeUndefined();
    expect(pushUrlProblem('udp://239.1.1.1:5000?ttl=4', udp)).toBeUndefined();
    expect(pushUrlProblem('udp://[2001:db8::1]:5000', udp)).toBeUndefined();
    expect(pushUrlProblem('rtmps://live.example.com/app/key', { protocols: ['rtmp', 'rtmps'], allowListeners: false })).toBeUndefined();
  });

  it('refuses spaces and control characters (a URL parser would drop a tab silently)', () => {
    expect(pushUrlProblem('u\tdp://127.0.0.1:5000', udp)).toBe('must not contain spaces or control characters');
    expect(pushUrlProblem('udp://127.0.0.1:5000\n-f', udp)).toBe('must not contain spaces or control characters');
    expect(pushUrlProblem('udp://127.0.0.1:5000 -y /etc/x', udp)).toBe('must not contain spaces or control characters');
  });

  it('refuses other schemes, no host, and the unspecified address', () => {
    expect(pushUrlProblem('file:///etc/passwd', srt)).toBe('must be a srt:// URL');
    expect(pushUrlProblem('srt', srt)).toBe('must be a srt:// URL');
    expect(pushUrlProblem('udp:///x', udp)).toMatch(/must name the host/);
    expect(pushUrlProblem('udp://:5000', udp)).toBe('must be a udp:// URL');
    expect(pushUrlProblem('udp://0.0.0.0:5000', udp)).toMatch(/not 0\.0\.0\.0 \(the unspecified address\)/);
    expect(pushUrlProblem('udp://[::]:5000', udp)).toMatch(/unspecified/);
    expect(pushUrlProblem('udp://0:5000', udp)).toMatch(/unspecified/);
  });

  it('refuses listener modes unless allowed', () => {
    expect(pushUrlProblem('srt://0.0.0.0:9000?mode=listener', srt)).toMatch(/unspecified/);
    expect(pushUrlProblem('srt://127.0.0.1:9000?mode=listener', srt)).toMatch(/must push to a listener, not listen itself/);
    expect(pushUrlProblem('srt://127.0.0.1:9000?mode=Rendezvous', srt)).toMatch(/not listen itself/);
    expect(pushUrlProblem('rtmp://127.0.0.1/app?listen=1', { protocols: ['rtmp'], allowListeners: false })).toMatch(/not listen itself/);
    expect(pushUrlProblem('srt://127.0.0.1:9000?mode=listener', { ...srt, allowListeners: true })).toBeUndefined();
  });

  it('looks the host up before a connect and refuses names that do not resolve', async () => {
    expect(await resolvePushHost('udp://127.0.0.1:5000')).toEqual(['127.0.0.1']);
    expect(await resolvePushHost('srt://localhost:9000')).toContain('127.0.0.1');
    await expect(resolvePushHost('udp://no-such-host.invalid:5000')).rejects.toThrow(/no-such-host\.invalid does not resolve/);
  });
});
