import * as sdpTransform from 'sdp-transform';
import { describe, expect, it } from 'vitest';
import { videoBitrateFor } from '../../src/config/patterns.js';
import { parseConfig } from '../../src/config/load.js';
import { shapeAnswer, TRANSPORT_CC_URI, transportCcExtensionIds } from '../../src/sdp/answer.js';

// What the gateway adds to werift's answer: transport-cc feedback where the extension was
// negotiated, and the publisher's bitrate range (b=AS, b=TIAS, x-google-*).

const answer = [
  'v=0',
  'o=- 1 0 IN IP4 0.0.0.0',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'c=IN IP4 0.0.0.0',
  'a=mid:0',
  'a=recvonly',
  `a=extmap:3 ${TRANSPORT_CC_URI}`,
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'm=video 9 UDP/TLS/RTP/SAVPF 109 114',
  'c=IN IP4 0.0.0.0',
  'a=mid:1',
  'a=recvonly',
  `a=extmap:3 ${TRANSPORT_CC_URI}`,
  'a=rtpmap:109 H264/90000',
  'a=rtcp-fb:109 nack',
  'a=rtcp-fb:109 nack pli',
  'a=fmtp:109 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
  'a=rtpmap:114 rtx/90000',
  'a=fmtp:114 apt=109',
  '',
].join('\r\n');

describe('SDP answer additions', () => {
  it('advertises transport-cc for every primary codec where the extension was negotiated', () => {
    const out = sdpTransform.parse(shapeAnswer(answer, { video: { maxKbps: 4000, startKbps: 2000 }, transportCc: true }));
    const fb = (i: number) => (out.media[i].rtcpFb ?? []).map((f) => `${f.payload} ${f.type}${f.subtype ? ` ${f.subtype}` : ''}`);
    expect(fb(0)).toEqual(['111 transport-cc']);
    expect(fb(1)).toEqual(['109 nack', '109 nack pli', '109 transport-cc']); // not on RTX
    expect(transportCcExtensionIds(answer)).toEqual([3]);
    expect(transportCcExtensionIds(answer.replace(/a=extmap:3 (.*)\r\na=rtpmap:109/, 'a=extmap:5 $1\r\na=rtpmap:109'))).toEqual([3, 5]);
  });

  it('writes the video bitrate range: b=AS, b=TIAS and x-google parameters on the video codec only', () => {
    const text = shapeAnswer(answer, { video: { maxKbps: 4000, startKbps: 2000 }, transportCc: false });
    const video = text.slice(text.indexOf('m=video'));
    expect(video).toContain('b=AS:4000\r\n');
    expect(video).toContain('b=TIAS:4000000\r\n');
    expect(video).toContain('a=fmtp:109 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f;x-google-max-bitrate=4000;x-google-start-bitrate=2000\r\n');
    expect(video).toContain('a=fmtp:114 apt=109\r\n');
    expect(text.slice(0, text.indexOf('m=video'))).not.toMatch(/b=AS|x-google/);
    expect(text).not.toContain('transport-cc');
  });

  it('gives a rejected section its reason as i= (media title), right after its m= line', () => {
    const rejected = answer.replace('m=audio 9 UDP/TLS/RTP/SAVPF 111', 'm=audio 0 UDP/TLS/RTP/SAVPF 111');
    const text = shapeAnswer(rejected, { video: { maxKbps: 4000, startKbps: 2000 }, transportCc: false, rejected: [{ index: 0, reason: 'no acceptable audio codec:\r\noffered AAC' }] });
    expect(text).toContain('m=audio 0 UDP/TLS/RTP/SAVPF 111\r\ni=no acceptable audio codec: offered AAC\r\nc=IN IP4');
    // Only on rejected sections: one the answer takes keeps no title.
    expect(shapeAnswer(answer, { video: { maxKbps: 4000, startKbps: 2000 }, transportCc: false, rejected: [{ index: 0, reason: 'x' }] })).not.toMatch(/^i=/m);
  });

  it('caps the start bitrate at the maximum', () => {
    expect(shapeAnswer(answer, { video: { maxKbps: 800, startKbps: 2000 }, transportCc: false })).toContain('x-google-max-bitrate=800;x-google-start-bitrate=800');
  });

  it('takes per-stream values from the first matching video.streams entry', () => {
    const config = parseConfig({ video: { maxBitrateKbps: 3000, streams: [{ streams: 'mobile-*', maxBitrateKbps: 900 }, { streams: '*', startBitrateKbps: 500 }] } });
    expect(videoBitrateFor(config.video, 'mobile-7')).toEqual({ maxKbps: 900, startKbps: 2000 });
    expect(videoBitrateFor(config.video, 'studio')).toEqual({ maxKbps: 3000, startKbps: 500 });
    expect(videoBitrateFor(parseConfig({}).video, 'cam1')).toEqual({ maxKbps: 4000, startKbps: 2000 });
  });
});
