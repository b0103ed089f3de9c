import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import * as sdpTransform from 'sdp-transform';
import { isMdnsName, parseCandidate, withoutMdnsCandidates } from '../../src/sdp/offer.js';
import { iceOptions } from '../../src/webrtc/ice-options.js';
import { iceServers, turnRestCredentials } from '../../src/webrtc/ice-servers.js';

describe('ICE settings', () => {
  it('makes TURN REST API credentials as coturn checks them (HMAC-SHA1 of "<expiry>:<user>")', () => {
    // Known answer from: echo -n "1600000000:user" | openssl dgst -sha1 -hmac secret -binary | base64
    expect(turnRestCredentials('secret', 'user', 0, 1_600_000_000_000)).toEqual({ username: '1600000000:user', credential: 'BwzEW9gDEHXnNCRCm1qZLqyo+hg=' });
  });

  it('lists configured servers and adds secret-based TURN with fresh credentials', () => {
    const ice = parseConfig({ ice: { servers: [{ urls: 'stun:stun.example:3478' }], turnUrls: ['turn:t.example:3478'], turnSecret: 's', turnCredentialTtlSeconds: 600 } }).ice;
    const list = iceServers(ice, 'u', 1_000_000_000);
    expect(list[0]).toEqual({ urls: 'stun:stun.example:3478' });
    expect(list[1]).toMatchObject({ urls: ['turn:t.example:3478'], username: '1000600:u' });
  });

  it('refuses turnUrls without a secret', () => {
    expect(() => parseConfig({ ice: { turnUrls: ['turn:x:3478'] } })).toThrow(/turnSecret/);
  });

  it('gathers only the listed addresses, bound to them', () => {
    const o = iceOptions(parseConfig({ ice: { addresses: ['127.0.0.1'] } }).ice);
    expect(o).toMatchObject({ iceUseIpv4: false, iceUseIpv6: false, iceAdditionalHostAddresses: ['127.0.0.1'], iceInterfaceAddresses: { udp4: '127.0.0.1' }, iceServers: [] });
  });

  it('advertises public addresses of a 1:1 NAT on wildcard-bound sockets', () => {
    const o = iceOptions(parseConfig({ ice: { addresses: ['10.0.0.5'], publicAddresses: ['203.0.113.7'], portRange: [40000, 40099], tcp: true } }).ice);
    expect(o.iceAdditionalHostAddresses).toEqual(['10.0.0.5', '203.0.113.7']);
    expect(o.iceInterfaceAddresses).toEqual({});
    expect(o).toMatchObject({ icePortRange: [40000, 40099], iceUseTcp: true });
  });

  it('uses every interface by default, IPv6 only when asked', () => {
    expect(iceOptions(parseConfig({}).ice)).toMatchObject({ iceUseIpv4: true, iceUseIpv6: false });
    expect(iceOptions(parseConfig({ ice: { ipv6: true } }).ice)).toMatchObject({ iceUseIpv6: true });
  });

  it("drops host candidates named by mDNS (only the browser's network resolves them), keeps the rest", () => {
    const offer = sdpTransform.parse(
      ['v=0', 'o=- 1 1 IN IP4 0.0.0.0', 's=-', 't=0 0', 'm=video 9 UDP/TLS/RTP/SAVPF 120', 'c=IN IP4 0.0.0.0',
        'a=candidate:0 1 UDP 2122252543 977d7fd8-2b4c-4599-a65d-d42aa9ce0717.local 56571 typ host',
        'a=candidate:1 1 UDP 1686052863 203.0.113.9 40000 typ srflx raddr 0.0.0.0 rport 0',
        'a=candidate:2 1 UDP 2122252543 10.0.0.5 56572 typ host', ''].join('\r\n'),
    );
    expect(withoutMdnsCandidates(offer).media[0].candidates?.map((c) => c.ip)).toEqual(['203.0.113.9', '10.0.0.5']);
    expect(offer.media[0].candidates).toHaveLength(3); // the parsed offer is left as it was
    // A trickled candidate is read the same way (PublisherPeer.addRemoteCandidate).
    const isMdnsCandidate = (line: string) => isMdnsName(parseCandidate(line)?.address ?? '');
    expect(isMdnsCandidate('candidate:0 1 UDP 2122252543 977d7fd8-2b4c-4599-a65d-d42aa9ce0717.local 56571 typ host')).toBe(true);
    expect(isMdnsCandidate('a=candidate:0 1 udp 2122252543 10.0.0.5 56571 typ host')).toBe(false);
    expect(isMdnsCandidate('')).toBe(false);
  });
});
