import { describe, expect, it } from 'vitest';
import { parsePushUrl, pushUrlProblem, resolvePushHost, withHost, type PushUrl } from '../../src/egress/push-url.js';

// Push URLs reach ffmpeg's command line: they are read as ffmpeg 5.1 reads them
// (av_url_split, av_find_info_tag), and what it could read otherwise than the check did
// is refused.

const srt = { protocols: ['srt'], allowListeners: false };
const udp = { protocols: ['udp'], allowListeners: false };
const rtmp = { protocols: ['rtmp', 'rtmps'], allowListeners: false };
const rtp = { protocols: ['rtp'], allowListeners: false };
const tcp = { protocols: ['tcp'], allowListeners: false };

function parsed(raw: string): PushUrl {
  const url = parsePushUrl(raw);
  if (typeof url === 'string') throw new Error(url);
  return url;
}

describe('push URLs', () => {
  it('accepts push targets', () => {
    expect(pushUrlProblem('srt://203.0.113.5:9000?mode=caller&latency=200', srt)).toBeUndefined();
    expect(pushUrlProblem('srt://ingest.example.com:9000?streamid=#!::r=live/cam,m=publish&passphrase=0123456789', srt)).toBeUndefined();
    expect(pushUrlProblem('udp://239.1.1.1:5000?ttl=4&localaddr=192.0.2.4', udp)).toBeUndefined();
    expect(pushUrlProblem('udp://[2001:db8::1]:5000', udp)).toBeUndefined();
    expect(pushUrlProblem('rtmps://live.example.com/app/key', rtmp)).toBeUndefined();
    expect(pushUrlProblem('rtmps://live-api-s.example.com:443/rtmp/FB-1-0-Ab?s_bl=1&s_sw=0&a=AbX', rtmp)).toBeUndefined();
    expect(pushUrlProblem('rtmp://user:secret@live.example.com/app/key', rtmp)).toBeUndefined();
  });

  it('reads a URL as ffmpeg does: host, port, path and the options after the first ?', () => {
    expect(parsed('srt://Ingest.Example.com:9000/x?mode=caller&latency=200&streamid=#!::r=a+b')).toEqual({
      scheme: 'srt',
      userinfo: undefined,
      host: 'ingest.example.com',
      ipVersion: 0,
      port: 9000,
      path: '/x',
      query: 'mode=caller&latency=200&streamid=#!::r=a+b',
      options: [
        { key: 'mode', value: 'caller' },
        { key: 'latency', value: '200' },
        { key: 'streamid', value: '#!::r=a b' },
      ],
    });
    expect(parsed('rtmp://u:p@[2001:DB8::1]/app/key')).toMatchObject({ userinfo: 'u:p', host: '2001:db8::1', ipVersion: 6, port: undefined, path: '/app/key' });
    expect(parsed('udp://192.0.2.1:5000')).toMatchObject({ host: '192.0.2.1', ipVersion: 4, port: 5000, path: '', query: undefined, options: [] });
  });

  it('puts another host in its place and leaves every other character as it was', () => {
    expect(withHost(parsed('srt://ingest.example.com:9000?mode=caller&passphrase=a%20b'), '198.51.100.4')).toBe('srt://198.51.100.4:9000?mode=caller&passphrase=a%20b');
    expect(withHost(parsed('rtmp://u:p@live.example.com/app/key?x=1'), '2001:db8::5')).toBe('rtmp://u:p@[2001:db8::5]/app/key?x=1');
  });

  it('refuses spaces, control characters and non-ASCII (a URL parser would drop a tab silently)', () => {
    expect(pushUrlProblem('u\tdp://127.0.0.1:5000', udp)).toBe('must not contain spaces or control characters');
    expect(pushUrlProblem('udp://127.0.0.1:5000\n-f', udp)).toBe('must not contain spaces or control characters');
    expect(pushUrlProblem('udp://127.0.0.1:5000 -y /etc/x', udp)).toBe('must not contain spaces or control characters');
    expect(pushUrlProblem('rtmp://ingést.example.com/app/k', rtmp)).toMatch(/plain ASCII/);
  });

  it('refuses other schemes, upper-case schemes, no host, and the unspecified address', () => {
    expect(pushUrlProblem('file:///etc/passwd', srt)).toBe('must be a srt:// URL');
    expect(pushUrlProblem('srt', srt)).toBe('must be a srt:// URL');
    expect(pushUrlProblem('srt:host:9000', srt)).toBe('must be a srt:// URL');
    expect(pushUrlProblem('RTMP://live.example.com/app/k', rtmp)).toMatch(/lower case \(rtmp:\/\/\): ffmpeg does not know RTMP:\/\//);
    expect(pushUrlProblem('Srt://203.0.113.5:9000', srt)).toMatch(/lower case/);
    expect(pushUrlProblem('udp:///x', udp)).toMatch(/must name the host/);
    expect(pushUrlProblem('udp://:5000', udp)).toMatch(/must name the host/);
    expect(pushUrlProblem('udp://0.0.0.0:5000', udp)).toMatch(/not 0\.0\.0\.0 \(the unspecified address\)/);
    expect(pushUrlProblem('udp://[::]:5000', udp)).toMatch(/unspecified/);
    expect(pushUrlProblem('udp://[::ffff:0.0.0.0]:5000', udp)).toMatch(/unspecified/);
    expect(pushUrlProblem('udp://0:5000', udp)).toMatch(/unspecified/);
  });

  it('refuses what ffmpeg could read otherwise: fragments, user information, backslashes, odd hosts and ports', () => {
    const refused: [string, typeof srt, RegExp][] = [
      ['srt://10.20.0.5:9100#?mode=listener', srt, /must not contain # before the options/],
      ['srt://10.20.0.5:9100/#x?latency=1', srt, /must not contain # before the options/],
      ['rtmp://allowed.example.com#@203.0.113.9/app/k', rtmp, /must not contain # before the options/],
      ['srt://allowed.example.com@203.0.113.9:9000', srt, /must not contain user information \(@\): ffmpeg would push to what follows the @, 203\.0\.113\.9:9000/],
      ['udp://a@b@203.0.113.9:5000', udp, /user information/],
      ['rtmp://a@b@203.0.113.9/app', rtmp, /more than one @/],
      ['rtmp://@203.0.113.9/app', rtmp, /empty user name/],
      ['rtmp://allowed.example.com\\@203.0.113.9/app', rtmp, /backslashes/],
      ['rtmp://live.example.com/app\\..\\x', rtmp, /backslashes/],
      ['rtmp://live%2eexample.com/app', rtmp, /percent-encode the host/],
      ['rtmp://127.1/app', rtmp, /four decimal numbers/],
      ['rtmp://0x7f.0.0.1/app', rtmp, /four decimal numbers/],
      ['rtmp://2130706433/app', rtmp, /four decimal numbers/],
      ['rtmp://010.0.0.1/app', rtmp, /four decimal numbers/],
      ['rtmp://allowed.example.com./app', rtmp, /must not end the host name with a dot/],
      ['rtmp://a..example.com/app', rtmp, /letters, digits/],
      ['rtmp://a_b!.example.com/app', rtmp, /letters, digits/],
      ['udp://[fe80::1%eth0]:5000', udp, /IPv6 host as \[address\] \(no zone\)/],
      ['udp://[2001:db8::1]x:5000', udp, /IPv6 host/],
      ['udp://[203.0.113.9]:5000', udp, /IPv6 host/],
      ['udp://2001:db8::1:5000', udp, /IPv6 host in brackets/],
      ['udp://203.0.113.9:0', udp, /port must be a number from 1 to 65535, not "0"/],
      ['udp://203.0.113.9:65536', udp, /1 to 65535/],
      ['udp://203.0.113.9:123456', udp, /1 to 65535/],
      ['udp://203.0.113.9:+80', udp, /1 to 65535/],
      ['udp://203.0.113.9:-1', udp, /1 to 65535/],
      ['udp://203.0.113.9:', udp, /1 to 65535/],
      ['udp://203.0.113.9:80:81', udp, /IPv6 host in brackets/],
      ['rtmp://live.example.com/app/%2e%2e/other', rtmp, /percent-encode dots, slashes/],
      ['rtmp://live.example.com/app%2Fother/k', rtmp, /percent-encode dots, slashes/],
      ['rtmp://live.example.com/app/%zz', rtmp, /% that is not followed by two hex digits/],
      ['rtmp://live.example.com/app/../other/k', rtmp, /\. or \.\. path segments/],
      ['rtmp://live.example.com/./app/k', rtmp, /\. or \.\. path segments/],
      ['srt://203.0.113.5:9000?latency=1?mode=listener', srt, /second \?/],
    ];
    for (const [raw, rules, problem] of refused) expect(pushUrlProblem(raw, rules), raw).toMatch(problem);
  });

  it('refuses listener modes and chosen local ports however they are written, unless allowed', () => {
    const listening: [string, typeof srt][] = [
      ['srt://127.0.0.1:9000?mode=listener', srt],
      ['srt://127.0.0.1:9000?mode=Rendezvous', srt],
      ['srt://127.0.0.1:9000?MODE=Listener', srt],
      ['srt://127.0.0.1:9000?latency=20&mode=listener', srt],
      ['srt://127.0.0.1:9000?mode=caller&mode=listener', srt], // ffmpeg takes the first; refused all the same
      ['srt://127.0.0.1:9000?mode=%6Cistener', srt],
      ['srt://127.0.0.1:9000?%6dode=listener', srt],
      ['srt://127.0.0.1:9000?mode=listener+', srt],
      ['srt://127.0.0.1:9000?mode=server', srt],
      ['srt://127.0.0.1:9000?latency=1&streamid=#x&mode=listener', srt],
      ['rtmp://127.0.0.1/app?listen=1', rtmp],
      ['rtmp://127.0.0.1/app?listen', rtmp],
      ['rtmp://127.0.0.1/app/k?LISTEN=1', rtmp],
      ['rtmp://127.0.0.1/app/k?rtmp_listen=1', rtmp],
      ['tcp://127.0.0.1:9000?listen', tcp],
      ['tcp://127.0.0.1:9000?listen=2', tcp],
      ['tcp://127.0.0.1:9000?listen_timeout=1000', tcp],
    ];
    for (const [raw, rules] of listening) {
      expect(pushUrlProblem(raw, rules), raw).toMatch(/must push to a listener, not listen itself \(.* push\.allowListeners allows it\)/);
      expect(pushUrlProblem(raw, { ...rules, allowListeners: true }), raw).toBeUndefined();
    }
    for (const [raw, rules] of [['udp://203.0.113.5:5000?localport=20002', udp], ['udp://203.0.113.5:5000?LocalPort=20002&reuse=1', udp], ['rtp://203.0.113.5:5004?localrtpport=20002', rtp], ['rtp://203.0.113.5:5004?localrtcpport=20003', rtp], ['rtp://203.0.113.5:5004?localport=20002', rtp], ['tcp://203.0.113.5:9000?local_port=9000', tcp]] as const) {
      expect(pushUrlProblem(raw, rules), raw).toMatch(/must not choose a local port \(.* binds a port on this machine; push\.allowListeners allows it\)/);
      expect(pushUrlProblem(raw, { ...rules, allowListeners: true }), raw).toBeUndefined();
    }
  });

  it('looks the host up before a connect and refuses names that do not resolve', async () => {
    expect(await resolvePushHost('udp://127.0.0.1:5000')).toEqual(['127.0.0.1']);
    expect(await resolvePushHost('srt://localhost:9000')).toContain('127.0.0.1');
    await expect(resolvePushHost('udp://no-such-host.invalid:5000')).rejects.toThrow(/no-such-host\.invalid does not resolve/);
    await expect(resolvePushHost('udp://zero.invalid:5000', async () => ['198.51.100.1', '0.0.0.0'])).rejects.toThrow(/zero\.invalid resolves to 0\.0\.0\.0 \(the unspecified address\)/);
    expect(await resolvePushHost('udp://twice.invalid:5000', async () => ['198.51.100.1', '198.51.100.1'])).toEqual(['198.51.100.1']);
  });
});
