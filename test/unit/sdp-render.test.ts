import * as sdpTransform from 'sdp-transform';
import { describe, expect, it } from 'vitest';
import { fillTemplate, renderSessionSdp } from '../../src/sdp/render.js';

describe('session SDP rendering', () => {
  const text = renderSessionSdp({
    name: 'cam1',
    address: '127.0.0.1',
    sessionId: 42,
    media: [
      { codec: 'h264', port: 20000, payloadType: 102, clockRate: 90000, fmtp: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'sprop-parameter-sets': 'Z0LgH9kAoD2wEQAAAwABAAADADyPGDKA,aM4PyA==' } },
      { codec: 'opus', port: 20002, payloadType: 111, clockRate: 48000, channels: 2, fmtp: { 'sprop-stereo': 1 } },
    ],
  });

  it('renders what ffmpeg needs, parsed back with sdp-transform', () => {
    const sdp = sdpTransform.parse(text);
    expect(sdp.origin?.sessionId).toBe(42);
    expect(sdp.connection).toEqual({ version: 4, ip: '127.0.0.1' });
    const [video, audio] = sdp.media;
    expect(video).toMatchObject({ type: 'video', port: 20000, protocol: 'RTP/AVP' });
    expect(String(video.payloads)).toBe('102');
    expect(video.rtp).toEqual([{ payload: 102, codec: 'H264', rate: 90000 }]);
    expect(video.fmtp[0].config).toBe('packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0LgH9kAoD2wEQAAAwABAAADADyPGDKA,aM4PyA==');
    expect(audio).toMatchObject({ type: 'audio', port: 20002 });
    expect(audio.rtp).toEqual([{ payload: 111, codec: 'opus', rate: 48000, encoding: 2 }]);
  });

  it('uses CRLF line endings', () => {
    expect(text.split('\r\n').length).toBeGreaterThan(8);
    expect(text.replace(/\r\n/g, '')).not.toContain('\n');
  });

  it('leaves out an fmtp line with no parameters and keeps negotiated payload types', () => {
    const pcmu = renderSessionSdp({ name: 'x', address: '127.0.0.1', media: [{ codec: 'pcmu', port: 20010, payloadType: 0, clockRate: 8000 }] });
    const sdp = sdpTransform.parse(pcmu);
    expect(sdp.media[0].rtp).toEqual([{ payload: 0, codec: 'PCMU', rate: 8000 }]);
    const noFmtp = renderSessionSdp({ name: 'x', address: '127.0.0.1', media: [{ codec: 'opus', port: 20010, payloadType: 109, clockRate: 48000 }] });
    expect(noFmtp).not.toContain('a=fmtp');
    expect(noFmtp).toContain('a=rtpmap:109 opus/48000/2');
  });

  it('refuses a codec without a template and a placeholder without a value', () => {
    expect(() => renderSessionSdp({ name: 'x', address: '127.0.0.1', media: [{ codec: 'av1', port: 1, payloadType: 96, clockRate: 90000 }] })).toThrow(/no SDP template for "av1"/);
    expect(() => fillTemplate('m=video {{port}} {{nope}}', { port: 1 })).toThrow(/\{\{nope\}\}/);
  });
});
