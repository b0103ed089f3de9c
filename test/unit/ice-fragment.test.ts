import * as sdpTransform from 'sdp-transform';
import { describe, expect, it } from 'vitest';
import { answerFragment, credentialsOf, iceUpdateOfOffer, parseIceFragment, withIce } from '../../src/sdp/ice-fragment.js';
import { SdpError } from '../../src/sdp/offer.js';

// ICE after the offer: WHIP PATCH bodies (RFC 8840 fragments) and WebSocket re-offers
// read into one IceUpdate; the re-offer werift gets; the fragment a restart is answered with.

const offer = [
  'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1', 'a=ice-ufrag:abcd', 'a=ice-pwd:0123456789012345678901', 'a=fingerprint:sha-256 AA:BB',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=mid:0', 'a=sendonly', 'a=rtpmap:111 opus/48000/2', 'a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host',
  'm=video 9 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 0.0.0.0', 'a=mid:1', 'a=sendonly', 'a=rtpmap:96 H264/90000', 'a=fmtp:96 packetization-mode=1;profile-level-id=42e01f',
  '',
].join('\r\n');

// RFC 9725 §4.3.2's example of an ICE restart PATCH, as a WHIP client sends it.
const restart = [
  'a=ice-options:trickle ice2', 'm=audio 9 RTP/AVP 0', 'a=mid:0', 'a=ice-ufrag:ysXw', 'a=ice-pwd:vw5LmwG4y/e6dPP/zAP9Gp5k',
  'a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1',
  'a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2',
  'a=end-of-candidates', '',
].join('\r\n');

const problem = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return `${(e as SdpError).status} ${(e as Error).message}`;
  }
};

describe('ICE fragments (RFC 8840)', () => {
  it('reads credentials, candidates with their mid, end-of-candidates', () => {
    expect(parseIceFragment(restart)).toEqual({
      ufrag: 'ysXw',
      pwd: 'vw5LmwG4y/e6dPP/zAP9Gp5k',
      candidates: [
        { candidate: expect.stringMatching(/^candidate:1387637174 1 udp .* 192\.0\.2\.1 61764 typ host/), mid: '0' },
        { candidate: expect.stringMatching(/^candidate:3471623853 .* 198\.51\.100\.2 61765 typ host/), mid: '0' },
      ],
      endOfCandidates: true,
      mids: ['0'],
    });
    // A trickle fragment may be a bare candidate line.
    expect(parseIceFragment('a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n')).toMatchObject({ candidates: [{ candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host' }], endOfCandidates: false });
  });

  it('names each problem with a 400', () => {
    expect(problem(() => parseIceFragment('hello'))).toMatch(/^400 .*not an application\/trickle-ice-sdpfrag/);
    expect(problem(() => parseIceFragment(offer))).toMatch(/^400 .*a whole SDP/);
    expect(problem(() => parseIceFragment('a=ice-ufrag:abcd\r\n'))).toMatch(/^400 .*a=ice-ufrag without a=ice-pwd/);
    expect(problem(() => parseIceFragment('a=ice-ufrag:a b\r\na=ice-pwd:0123456789012345678901\r\n'))).toMatch(/^400 .*ice-ufrag must be/);
    expect(problem(() => parseIceFragment('a=candidate:1 1 udp\r\n'))).toMatch(/^400 .*not an ICE candidate: "a=candidate:1 1 udp"/);
    const many = Array.from({ length: 65 }, (_, i) => `a=candidate:${i} 1 udp 1 127.0.0.1 ${1000 + i} typ host`).join('\r\n');
    expect(problem(() => parseIceFragment(many))).toMatch(/^400 .*65 ICE candidates; at most 64/);
  });

  it('reads a whole re-offer: the bundle tag section\'s credentials, every candidate, every section', () => {
    expect(iceUpdateOfOffer(offer)).toMatchObject({ ufrag: 'abcd', pwd: '0123456789012345678901', candidates: [{ mid: '0' }], mids: ['0', '1'] });
    expect(problem(() => iceUpdateOfOffer('hello'))).toMatch(/^400/);
  });

  it('makes the restart re-offer: new credentials in every section, the candidates on the tag, nothing else changed', () => {
    const update = parseIceFragment(restart);
    const re = sdpTransform.parse(withIce(offer, { ...update, ufrag: update.ufrag!, pwd: update.pwd! }));
    const before = sdpTransform.parse(offer);
    expect(re.iceUfrag).toBeUndefined();
    expect(re.media.map((m) => [m.iceUfrag, m.icePwd])).toEqual([['ysXw', 'vw5LmwG4y/e6dPP/zAP9Gp5k'], ['ysXw', 'vw5LmwG4y/e6dPP/zAP9Gp5k']]);
    expect(re.media[0].candidates?.map((c) => `${c.ip}:${c.port}`)).toEqual(['192.0.2.1:61764', '198.51.100.2:61765']);
    expect(re.media[0].endOfCandidates).toBe('end-of-candidates');
    expect(re.media[1].candidates).toBeUndefined();
    for (const i of [0, 1]) expect({ ...re.media[i], iceUfrag: 0, icePwd: 0, candidates: 0, endOfCandidates: 0 }).toEqual({ ...before.media[i], iceUfrag: 0, icePwd: 0, candidates: 0, endOfCandidates: 0 });
    expect(credentialsOf(re)).toEqual({ ufrag: 'ysXw', pwd: 'vw5LmwG4y/e6dPP/zAP9Gp5k' });
  });

  it('answers a restart with the tag section\'s credentials and each candidate once', () => {
    const answer = offer.replace('m=video', 'a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\nm=video').replace(/a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\nm=video[\s\S]*$/, (m) => `${m}a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n`);
    const frag = answerFragment(answer);
    expect(frag).toBe('m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n');
    expect(parseIceFragment(frag)).toMatchObject({ ufrag: 'abcd', endOfCandidates: true });
  });
});
