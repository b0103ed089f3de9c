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
    const chosen = chooseCodecs(parseOffer(offer(chromeAudio, chromeVideo))).tracks;
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
    expect(chooseCodecs(parseOffer(offer(v))).tracks.at(0)).toMatchObject({ payloadType: 123 });
  });

  it("follows the publisher's audio preference (PCMU first)", () => {
    const a = audio([[0, 'PCMU/8000'], [111, 'opus/48000/2']]);
    expect(chooseCodecs(parseOffer(offer(a))).tracks.at(0)).toMatchObject({ name: 'PCMU', payloadType: 0, clockRate: 8000, channels: 1 });
  });

  it('takes VP8, then VP9 profile 0, when no usable H.264 is offered (transcoded); H.264 always wins', () => {
    expect(chooseCodecs(parseOffer(offer(video([[96, 'VP8'], [97, 'rtx', 'apt=96'], [98, 'VP9', 'profile-id=0']])))).tracks.at(0)).toMatchObject({ name: 'VP8', payloadType: 96, rtxPayloadType: 97 });
    expect(chooseCodecs(parseOffer(offer(video([[98, 'VP9', 'profile-id=2'], [100, 'VP9', 'profile-id=0']])))).tracks.at(0)).toMatchObject({ name: 'VP9', payloadType: 100 });
    expect(chooseCodecs(parseOffer(offer(video([[96, 'VP8'], [102, 'H264', 'packetization-mode=1;profile-level-id=42e01f']])))).tracks.at(0)).toMatchObject({ name: 'H264', payloadType: 102 });
  });

  it('leaves out a section with no acceptable codec when another is usable, naming it; 406 only when none is', () => {
    const av1 = video([[45, 'AV1']]);
    const choice = chooseCodecs(parseOffer(offer(chromeAudio, av1)));
    expect(choice.tracks.map((t) => t.kind)).toEqual(['audio']);
    expect(choice.ignored).toEqual([{ index: 1, mid: '1', kind: 'video', reason: expect.stringMatching(/^no acceptable video codec: offered AV1\/90000; accepted H264/) }]);
    // werift gets that section rejected (port 0) and out of the bundle.
    const restricted = restrictOffer(parseOffer(offer(chromeAudio, av1)).sdp, choice.tracks, choice.ignored);
    expect(restricted.media[1].port).toBe(0);
    expect(restricted.groups).toEqual([{ type: 'BUNDLE', mids: '0' }]);
  });

  it('takes one section of each kind: a second video section is left out and named', () => {
    const second = video([[102, 'H264', 'packetization-mode=1;profile-level-id=42e01f']]).map((l) => l.replace('a=mid:1', 'a=mid:2'));
    const text = offer(chromeAudio, chromeVideo, second).replace('a=group:BUNDLE 0 1', 'a=group:BUNDLE 0 1 2');
    const choice = chooseCodecs(parseOffer(text));
    expect(choice.tracks.map((t) => `${t.kind} ${t.mid}`)).toEqual(['audio 0', 'video 1']);
    expect(choice.ignored).toEqual([{ index: 2, mid: '2', kind: 'video', reason: 'a second video section: the outputs take one video track, from video (mid 1)' }]);
  });

  it('moves the candidates to the new first section when the bundle tag is left out', () => {
    const av1 = video([[45, 'AV1']]).map((l) => (l === 'a=rtcp-mux' ? 'a=rtcp-mux\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host' : l));
    const text = offer(av1, chromeAudio).replace('a=group:BUNDLE 0 1', 'a=group:BUNDLE 1 0');
    const parsed = parseOffer(text);
    const choice = chooseCodecs(parsed);
    const restricted = restrictOffer(parsed.sdp, choice.tracks, choice.ignored);
    expect(restricted.groups).toEqual([{ type: 'BUNDLE', mids: '0' }]);
    expect(restricted.media[0].port).toBe(0);
    expect(restricted.media[0].candidates).toBeUndefined();
    expect(restricted.media[1].candidates?.map((c) => c.port)).toEqual([5000]);
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
    const restricted = sdpTransform.parse(sdpTransform.write(restrictOffer(parsed.sdp, chooseCodecs(parsed).tracks)));
    expect(restricted.media[1].rtp.map((r) => r.payload)).toEqual([109, 114]);
    expect(restricted.media[1].rtcpFb?.map((f) => String(f.payload))).toEqual(['109', '109']);
    expect(restricted.media[0].rtp.map((r) => r.payload)).toEqual([111]);
    expect(parsed.sdp.media[1].rtp).toHaveLength(10); // the original is untouched
  });
});

describe('bundle-only sections (RFC 8843)', () => {
  // GStreamer webrtcbin with bundle-policy max-bundle: the second section has port 0 and a=bundle-only.
  const gst = (group = 'a=group:BUNDLE video0 audio1') =>
    [
      'v=0', 'o=- 1 0 IN IP4 0.0.0.0', 's=-', 't=0 0', group, 'a=ice-options:trickle',
      'm=video 9 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 0.0.0.0', 'a=setup:actpass', 'a=ice-ufrag:gst1', 'a=ice-pwd:0123456789012345678901', 'a=rtcp-mux', 'a=sendonly', 'a=mid:video0',
      'a=rtpmap:96 H264/90000', 'a=fmtp:96 packetization-mode=1;profile-level-id=42e01f', 'a=fingerprint:sha-256 AA:BB', 'a=candidate:1 1 UDP 2015363327 127.0.0.1 40000 typ host',
      'm=audio 0 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=bundle-only', 'a=setup:actpass', 'a=ice-ufrag:gst1', 'a=ice-pwd:0123456789012345678901', 'a=rtcp-mux', 'a=sendonly', 'a=mid:audio1',
      'a=rtpmap:111 OPUS/48000/2', 'a=fingerprint:sha-256 AA:BB',
    ].join('\r\n') + '\r\n';

  it('takes a bundle-only section of the BUNDLE group into the session (port 9, no bundle-only)', () => {
    const parsed = parseOffer(gst());
    expect(parsed.ignored).toEqual([]);
    expect(parsed.sending.map((m) => `${m.kind} ${m.mid}`)).toEqual(['video video0', 'audio audio1']);
    expect(parsed.sdp.media[1]).toMatchObject({ port: 9, iceUfrag: 'gst1', fingerprint: { type: 'sha-256', hash: 'AA:BB' } });
    expect(parsed.sdp.media[1].bundleOnly).toBeUndefined();
  });

  it('copies the transport attributes a bundle-only section left out from the tag section', () => {
    const bare = gst().replace(/(m=audio[\s\S]*?)a=setup:actpass\r\na=ice-ufrag:gst1\r\na=ice-pwd:0123456789012345678901\r\n/, '$1').replace(/(m=audio[\s\S]*)a=fingerprint:sha-256 AA:BB\r\n/, '$1');
    expect(bare).not.toMatch(/m=audio[\s\S]*ice-ufrag/);
    expect(parseOffer(bare).sdp.media[1]).toMatchObject({ port: 9, iceUfrag: 'gst1', icePwd: '0123456789012345678901', setup: 'actpass', fingerprint: { hash: 'AA:BB' } });
  });

  it('names a port-0 section that cannot join a bundle, and one disabled without bundle-only', () => {
    const outside = parseOffer(gst('a=group:BUNDLE video0'));
    expect(outside.ignored).toEqual([{ index: 1, mid: 'audio1', kind: 'audio', reason: 'a=bundle-only, but not in an a=group:BUNDLE of the offer' }]);
    const disabled = parseOffer(gst().replace('a=bundle-only\r\n', ''));
    expect(disabled.ignored).toEqual([{ index: 1, mid: 'audio1', kind: 'audio', reason: 'port 0 without a=bundle-only: the publisher disabled this section' }]);
    expect(chooseCodecs(disabled).ignored).toEqual(disabled.ignored);
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
