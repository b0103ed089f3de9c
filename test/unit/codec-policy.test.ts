import { describe, expect, it } from 'vitest';
import * as sdpTransform from 'sdp-transform';
import { parseOffer, SdpError } from '../../src/sdp/offer.js';
import { chooseCodecs, h264Rank, restrictOffer } from '../../src/webrtc/codec-policy.js';

// Offers shaped like Chromium's: several H.264 variants (packetization-mode 0 and 1,
// baseline and high), VP8/VP9, RTX for each, Opus/PCMU/PCMA.
const session = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1', 'a=fingerprint:sha-256 AA:BB', 'a=ice-ufrag:abcd', 'a=ice-pwd:0123456789012345678901'];
function video(codecs: [number, string, string?][], dir = 'sendonly'): string[] {
  const lines = [`m=video 9 UDP/TLS/RTP/SAVPF ${codecs.map((c) => c[0]).join(' ')}`, 'c=IN IP4 0.0.0.0', 'a=mid:1', `a=${dir}`, 'a=rtcp-mux'];
  for (const [pt, name, fmtp] of codecs) {
    lines.push(`a=rtpmap:${pt} ${name}/90000`);
    if (fmtp) lines.push(`a=fmtp:${pt} ${fmtp}`);
    if (name !== 'rtx') lines.push(`a=rtcp-fb:${pt} nack`, `a=rtcp-fb:${pt} nack pli`);
  }
  return lines;
}
function audio(codecs: [number, string][], dir = 'sendonly'): string[] {
  return [`m=audio 9 UDP/TLS/RTP/SAVPF ${codecs.map((c) => c[0]).join(' ')}`, 'c=IN IP4 0.0.0.0', 'a=mid:0', `a=${dir}`, 'a=rtcp-mux', ...codecs.map(([pt, name]) => `a=rtpmap:${pt} ${name}`)];
}
const offer = (...sections: string[][]) => [...session, ...sections.flat()].join('\r\n') + '\r\n';

const chromeVideo = video([
  [96, 'VP8'], [97, 'rtx', 'apt=96'],
  [103, 'H264', 'level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f'], [104, 'rtx', 'apt=103'],
  [107, 'H264', 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f'], [108, 'rtx', 'apt=107'],
  [109, 'H264', 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f'], [114, 'rtx', 'apt=109'],
  [123, 'H264', 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f'], [124, 'rtx', 'apt=123'],
]);
const chromeAudio = audio([[111, 'opus/48000/2'], [0, 'PCMU/8000'], [8, 'PCMA/8000']]);

describe('codec policy', () => {
  it('takes Constrained Baseline 42e01f with packetization-mode=1 and its RTX', () => {
    const chosen = chooseCodecs(parseOffer(offer(chromeAudio, chromeVideo)));
    const v = chosen.find((c) => c.kind === 'video')!;
    expect(v).toMatchObject({ name: 'H264', payloadType: 109, rtxPayloadType: 114 });
    expect(chosen.find((c) => c.kind === 'audio')).toMatchObject({ name: 'opus', payloadType: 111, channels: 1 });
  });

  it('ranks H.264 profiles as RFC 6184 defines them: Constrained Baseline (also as flagged Main) before Baseline, Main, High', () => {
    const rank = (pli: string) => h264Rank({ name: 'H264', clockRate: 90000, payloadType: 96, fmtp: { 'packetization-mode': '1', 'profile-level-id': pli }, rtcpFeedback: [] });
    expect(rank('42e01f')).toBe(0);
    expect(rank('42e034')).toBe(1); // Constrained Baseline 5.2
    expect(rank('4d801f')).toBe(1); // Main profile_idc with constraint_set0: Constrained Baseline
    expect(rank('42001f')).toBe(2); // Baseline
    expect(rank('4d001f')).toBe(3); // Main
    expect(rank('640c1f')).toBe(4); // Constrained High
    expect(rank('64001f')).toBe(4); // High
  });

  it('falls back to another packetization-mode=1 profile, never mode 0', () => {
    const v = video([[103, 'H264', 'packetization-mode=0;profile-level-id=42e01f'], [123, 'H264', 'packetization-mode=1;profile-level-id=640c1f']]);
    expect(chooseCodecs(parseOffer(offer(v))).at(0)).toMatchObject({ payloadType: 123 });
  });

  it("follows the publisher's audio preference (PCMU first)", () => {
    const a = audio([[0, 'PCMU/8000'], [111, 'opus/48000/2']]);
    expect(chooseCodecs(parseOffer(offer(a))).at(0)).toMatchObject({ name: 'PCMU', payloadType: 0, clockRate: 8000, channels: 1 });
  });

  it('takes VP8, then VP9 profile 0, when no usable H.264 is offered (transcoded); H.264 always wins', () => {
    expect(chooseCodecs(parseOffer(offer(video([[96, 'VP8'], [97, 'rtx', 'apt=96'], [98, 'VP9', 'profile-id=0']])))).at(0)).toMatchObject({ name: 'VP8', payloadType: 96, rtxPayloadType: 97 });
    expect(chooseCodecs(parseOffer(offer(video([[98, 'VP9', 'profile-id=2'], [100, 'VP9', 'profile-id=0']])))).at(0)).toMatchObject({ name: 'VP9', payloadType: 100 });
    expect(chooseCodecs(parseOffer(offer(video([[96, 'VP8'], [102, 'H264', 'packetization-mode=1;profile-level-id=42e01f']])))).at(0)).toMatchObject({ name: 'H264', payloadType: 102 });
  });

  it('refuses an AV1-only publisher with 406 listing offered and accepted codecs', () => {
    const v = video([[45, 'AV1'], [98, 'VP9', 'profile-id=2']]);
    const err = (() => {
      try {
        chooseCodecs(parseOffer(offer(v)));
      } catch (e) {
        return e as SdpError;
      }
    })();
    expect(err).toBeInstanceOf(SdpError);
    expect(err?.status).toBe(406);
    expect(err?.message).toMatch(/offered AV1\/90000, VP9\/90000; accepted H264 \(packetization-mode=1\), VP8, VP9 \(profile 0/);
  });

  it('hands werift an offer with only the chosen payload types', () => {
    const parsed = parseOffer(offer(chromeAudio, chromeVideo));
    const restricted = sdpTransform.parse(sdpTransform.write(restrictOffer(parsed.sdp, chooseCodecs(parsed))));
    expect(restricted.media[1].rtp.map((r) => r.payload)).toEqual([109, 114]);
    expect(restricted.media[1].rtcpFb?.map((f) => String(f.payload))).toEqual(['109', '109']);
    expect(restricted.media[0].rtp.map((r) => r.payload)).toEqual([111]);
    expect(parsed.sdp.media[1].rtp).toHaveLength(10); // the original is untouched
  });
});

describe('offer validation', () => {
  const status = (text: string) => {
    try {
      parseOffer(text);
      return 'ok';
    } catch (e) {
      return `${(e as SdpError).status} ${(e as Error).message}`;
    }
  };
  it('names each problem with a 400', () => {
    expect(status('hello')).toMatch(/^400 .*v=0/);
    expect(status(offer())).toMatch(/^400 .*no m= sections/);
    expect(status(offer(['m=application 9 UDP/DTLS/SCTP webrtc-datachannel']))).toMatch(/^400 .*no audio or video/);
    expect(status(offer(audio([[111, 'opus/48000/2']], 'recvonly')))).toMatch(/^400 .*does not send/);
    expect(status(offer(chromeAudio).replace(/a=ice-pwd.*\r\n/, ''))).toMatch(/^400 .*ice-ufrag\/ice-pwd/);
    expect(status(offer(chromeAudio).replace(/a=fingerprint.*\r\n/, ''))).toMatch(/^400 .*fingerprint/);
    expect(status(offer(chromeAudio))).toBe('ok');
  });
});
