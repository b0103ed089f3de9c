import { describe, expect, it } from 'vitest';
import { SdpError } from '../../src/sdp/offer.js';
import { parseViewerOffer } from '../../src/sdp/viewer-offer.js';
import type { ChosenCodec } from '../../src/webrtc/codec-policy.js';
import { chooseViewerCodecs, type StreamTrack } from '../../src/webrtc/viewer-codecs.js';

// What a WHEP viewer gets of a stream, from its offer's sections (a recvonly offer shaped
// as Chromium 156 makes it, trimmed to the lines that matter) and the stream's tracks.

function offer({ video = CHROMIUM_VIDEO, audio = true }: { video?: string[] | false; audio?: boolean } = {}): string {
  const lines = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', `a=group:BUNDLE ${[video && '0', audio && '1'].filter(Boolean).join(' ')}`];
  const transport = ['c=IN IP4 127.0.0.1', 'a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx', 'a=fingerprint:sha-256 00:11', 'a=setup:actpass', 'a=rtcp-mux', 'a=recvonly'];
  if (video) lines.push(`m=video 9 UDP/TLS/RTP/SAVPF ${video.map((l) => l.split(' ')[0]).join(' ')}`, ...transport, 'a=mid:0', ...video.map((l) => `a=rtpmap:${l.split(' ')[0]} ${l.split(' ')[1]}`), ...video.flatMap((l) => (l.split(' ')[2] ? [`a=fmtp:${l.split(' ')[0]} ${l.split(' ')[2]}`] : [])));
  if (audio) lines.push('m=audio 9 UDP/TLS/RTP/SAVPF 111 0', ...transport, 'a=mid:1', 'a=rtpmap:111 opus/48000/2', 'a=fmtp:111 minptime=10;useinbandfec=1', 'a=rtpmap:0 PCMU/8000');
  return `${lines.join('\r\n')}\r\n`;
}

/** payload type, rtpmap, fmtp */
const CHROMIUM_VIDEO = [
  '96 VP8/90000',
  '97 rtx/90000 apt=96',
  '103 H264/90000 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f',
  '107 H264/90000 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f',
  '108 H264/90000 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
  '112 H264/90000 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f',
  '98 VP9/90000 profile-id=0',
];

const codec = (c: Partial<ChosenCodec> & Pick<ChosenCodec, 'kind' | 'name'>): ChosenCodec => ({ index: 0, payloadType: 100, clockRate: c.kind === 'audio' && c.name !== 'opus' ? 8000 : c.kind === 'audio' ? 48000 : 90000, channels: 1, fmtp: {}, ...c });
const H264: StreamTrack = { track: 0, local: false, codec: codec({ kind: 'video', name: 'H264', fmtp: { 'profile-level-id': '42e01f', 'packetization-mode': '1' } }) };
const OPUS: StreamTrack = { track: 1, local: false, codec: codec({ kind: 'audio', name: 'opus', payloadType: 109 }) };
const VP8: StreamTrack = { track: 0, local: false, codec: codec({ kind: 'video', name: 'VP8' }) };
const AAC: StreamTrack = { track: 2, local: true, codec: codec({ kind: 'audio', name: 'AAC' }) };
const TRANSCODED: StreamTrack = { track: 3, local: true, codec: codec({ kind: 'video', name: 'H264', fmtp: { 'profile-level-id': '42e01f', 'packetization-mode': '1' } }) };

describe('what a WHEP viewer gets', () => {
  it("the publisher's H.264 as sent, on the viewer's payload type with the same profile and packetization-mode=1; Opus as sent", () => {
    const { chosen, ignored } = chooseViewerCodecs(parseViewerOffer(offer()), [H264, OPUS, AAC]);
    expect(ignored).toEqual([]);
    expect(chosen.map((c) => [c.track, c.codec.kind, c.codec.name, c.codec.payloadType, c.codec.mid])).toEqual([
      [0, 'video', 'H264', 108, '0'],
      [1, 'audio', 'opus', 111, '1'],
    ]);
  });

  it('VP8 as sent when the viewer takes it; the transcoded H.264 when it does not', () => {
    expect(chooseViewerCodecs(parseViewerOffer(offer()), [VP8, OPUS, TRANSCODED]).chosen[0]).toMatchObject({ track: 0, codec: { name: 'VP8', payloadType: 96 } });
    const h264Only = offer({ video: CHROMIUM_VIDEO.filter((l) => l.includes('H264')) });
    expect(chooseViewerCodecs(parseViewerOffer(h264Only), [VP8, OPUS, TRANSCODED]).chosen[0]).toMatchObject({ track: 3, codec: { name: 'H264', payloadType: 108 } });
  });

  it('a section nothing fits is left out, named; nothing at all fits: 406', () => {
    const vp9Only = offer({ video: ['98 VP9/90000 profile-id=0'] });
    const { chosen, ignored } = chooseViewerCodecs(parseViewerOffer(vp9Only), [H264, OPUS]);
    expect(chosen.map((c) => c.codec.kind)).toEqual(['audio']);
    expect(ignored).toEqual([{ index: 0, mid: '0', kind: 'video', reason: "the stream's video is H264; this section receives VP9/90000" }]);
    expect(() => chooseViewerCodecs(parseViewerOffer(offer({ video: ['98 VP9/90000 profile-id=0'], audio: false })), [H264, OPUS])).toThrow(SdpError);
    // A stream without audio (AAC is the gateway's own, for its outputs): the audio section is left out.
    expect(chooseViewerCodecs(parseViewerOffer(offer()), [H264, AAC]).ignored).toEqual([{ index: 1, mid: '1', kind: 'audio', reason: 'the stream has no audio' }]);
  });

  it('an offer that receives nothing is refused (400)', () => {
    expect(() => parseViewerOffer(offer().replace(/a=recvonly/g, 'a=sendonly'))).toThrow(/receives no audio or video/);
    expect(() => parseViewerOffer('hello')).toThrow(/not an SDP offer/);
  });
});
