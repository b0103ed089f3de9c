import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildArgs, loadDefinitions, loadSharedDefinition, parseDefinition, resolveParams } from '../../src/pipelines/definition.js';
import { aacCodec } from '../../src/outputs/shared-aac.js';
import { levelOf, transcodeKbps, TRANSCODED_H264 } from '../../src/outputs/shared-h264.js';

describe('pipeline definitions', () => {
  const defs = loadDefinitions();
  const hls = defs.get('hls')!;

  it('loads the HLS definition from pipelines/', () => {
    expect(hls.type).toBe('hls');
    expect(hls.params.segmentSeconds).toMatchObject({ type: 'number', default: 1 });
  });

  it('copies video, and copies the stream\'s shared AAC, which one encoder per stream makes with its channel count', () => {
    const args = buildArgs(hls, { ...resolveParams(hls, { segmentSeconds: 2 }), dir: '/d', stream: 's', audioChannels: 1, audioBitrate: '96k', file: '' }, { video: true, audio: true });
    const out = args.outputOptions.join(' ');
    expect(hls.audioInput).toBe('aac');
    expect(out).toContain('-c:v copy');
    expect(out).toContain('-map 0:a:0 -c:a copy');
    // Every output that writes AAC takes the shared one instead of encoding its own.
    for (const def of defs.values()) {
      if (def.audio.some((a) => a === 'aac')) throw new Error(`${def.type} encodes AAC itself`);
    }
    const encoder = loadSharedDefinition('aac');
    const enc = buildArgs(encoder, { ...resolveParams(encoder, { port: 40000, payloadType: aacCodec(1).payloadType }), dir: '/d', stream: 's', audioChannels: 1, audioBitrate: '96k', file: '' }, { video: false, audio: true });
    expect(enc.outputOptions.join(' ')).toContain('-c:a aac -b:a 96k -ac 1 -ar 48000 -f rtp');
    // The encoder sends the payload type the gateway's AAC track is declared with (one source: shared-aac.ts).
    expect(enc.outputOptions.join(' ')).toContain(`-payload_type ${aacCodec(1).payloadType}`);
    expect(enc.target).toBe('rtp://127.0.0.1:40000?rtcpport=40000&localaddr=127.0.0.1&pkt_size=1200');
    // RFC 3640 config: AAC-LC, 48 kHz, channels (what ffmpeg's encoder writes as extradata).
    expect(aacCodec(2).fmtp.config).toBe('1190');
    expect(aacCodec(1).fmtp.config).toBe('1188');
    expect(out).toContain('-hls_time 2');
    expect(args.target).toBe('/d/index.m3u8');
    expect(args.keyframeIntervalSeconds).toBe(2);
    expect(args.inputOptions).toContain('-protocol_whitelist');
  });

  it('gives a transcoded stream a bitrate for its picture size once capped, at most transcode.videoKbps', () => {
    const settings = { videoKbps: 2500, maxHeight: 720 };
    expect(transcodeKbps({}, settings)).toBe(2500); // size not known yet
    expect(transcodeKbps({ width: 1280, height: 720 }, settings)).toBe(2488);
    expect(transcodeKbps({ width: 1920, height: 1080 }, settings)).toBe(2488); // scaled to 720p first
    expect(transcodeKbps({ width: 640, height: 480 }, settings)).toBe(829);
    expect(transcodeKbps({ width: 320, height: 240 }, settings)).toBe(207);
    expect(transcodeKbps({ width: 160, height: 90 }, settings)).toBe(150);
    expect(transcodeKbps({ width: 1920, height: 1080 }, { videoKbps: 1500, maxHeight: 1080 })).toBe(1500);
  });

  it('transcodes VP8/VP9 with the configured x264 preset and height cap (defaults veryfast, 720)', () => {
    const h264 = loadSharedDefinition('h264');
    const args = (given: Record<string, unknown>) =>
      buildArgs(h264, { ...resolveParams(h264, { port: 40000, payloadType: TRANSCODED_H264.payloadType, level: levelOf(TRANSCODED_H264), ...given }), dir: '/d', stream: 's', audioChannels: 2, audioBitrate: '128k', file: '' }, { video: true, audio: false }).outputOptions.join(' ');
    expect(args({})).toContain('-vf scale=-2:trunc(min(ih\\,720)/2)*2 ');
    // Payload type and level come from the track's codec (one source: shared-h264.ts): 42e028 is level 4.0.
    expect(args({})).toContain('-profile:v baseline -level 4.0 ');
    expect(args({})).toContain(`-payload_type ${TRANSCODED_H264.payloadType}`);
    expect(args({})).toContain('-preset veryfast -tune zerolatency');
    expect(args({ preset: 'fast', maxHeight: 480 })).toContain('-vf scale=-2:trunc(min(ih\\,480)/2)*2 ');
    expect(args({ preset: 'fast', maxHeight: 480 })).toContain('-preset fast -tune zerolatency');
    expect(() => resolveParams(h264, { port: 40000, payloadType: 102, level: '4.0', preset: 'placebo' })).toThrow(/preset/);
  });

  it('goes on with the playlist when HLS ffmpeg is started again after it died', () => {
    const values = { ...resolveParams(hls), dir: '/d', stream: 's', audioChannels: 2, audioBitrate: '128k', file: '' };
    const flags = (restart: boolean) => {
      const out = buildArgs(hls, values, { video: true, audio: true, restart }).outputOptions;
      return out[out.indexOf('-hls_flags') + 1];
    };
    expect(flags(false)).toBe('delete_segments+independent_segments+temp_file');
    expect(flags(true)).toBe('delete_segments+independent_segments+temp_file+append_list+discont_start');
  });

  it('leaves out the options of a missing track kind', () => {
    const args = buildArgs(hls, { ...resolveParams(hls), dir: '/d', stream: 's', audioChannels: 2, audioBitrate: '128k', file: '' }, { video: true, audio: false });
    expect(args.outputOptions.join(' ')).not.toContain('aac');
  });

  it('checks parameters against the definition, naming the field', () => {
    expect(() => resolveParams(hls, { segmentSeconds: 0.1 })).toThrow(/^segmentSeconds: .*0\.5/);
    expect(() => resolveParams(hls, { listSize: 2.5 })).toThrow(/^listSize: .*int/);
    expect(() => resolveParams(hls, { listSize: 'six' })).toThrow(/^listSize: .*number/);
    expect(() => resolveParams(hls, { segmentFormat: 'webm' })).toThrow(/^segmentFormat: .*mpegts.*fmp4/);
    expect(() => resolveParams(hls, { sgmentSeconds: 2 })).toThrow(/sgmentSeconds: unknown field for hls/);
  });

  it('splices the options of the chosen enum value', () => {
    const values = { ...resolveParams(hls, { segmentFormat: 'fmp4' }), dir: '/d', stream: 's', audioChannels: 2, audioBitrate: '128k', file: '' };
    const out = buildArgs(hls, values, { video: true, audio: true }).outputOptions.join(' ');
    expect(out).toContain('-hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 -hls_segment_filename /d/segment_%05d.m4s');
    expect(out).not.toContain('{{');
  });

  it('accepts push URLs only with the protocols of their type', () => {
    const srt = defs.get('srt')!;
    const rtmp = defs.get('rtmp')!;
    expect(resolveParams(srt, { url: 'srt://127.0.0.1:9000?mode=caller' }).url).toBe('srt://127.0.0.1:9000?mode=caller');
    expect(() => resolveParams(srt, { url: 'file:///etc/passwd' })).toThrow(/^url: must be a srt:\/\/ URL/);
    expect(() => resolveParams(rtmp, { url: 'http://example.com/x' })).toThrow(/^url: must be a rtmp:\/\/ or rtmps:\/\/ URL/);
    expect(() => resolveParams(rtmp, {})).toThrow(/^url: /);
  });

  it('loads every shipped definition', () => {
    expect([...defs.keys()].sort()).toEqual(['hls', 'mpegts-http', 'record', 'rtmp', 'rtp-mpegts', 'snapshot', 'srt', 'udp']);
  });

  it('refuses a definition with an unknown placeholder', () => {
    expect(() => parseDefinition({ type: 'x', description: '', input: [], output: ['{{nope}}'], target: 'a' })).toThrow(/unknown placeholder \{\{nope\}\}/);
  });

  it("gives every pipeline the shared input options unless it names its own, and reads the user's folder", () => {
    expect(hls.input).toEqual(['-protocol_whitelist', 'file,udp,rtp', '-analyzeduration', '400000', '-probesize', '65536', '-fflags', '+genpts']);
    expect(defs.get('snapshot')!.input).not.toContain('+genpts'); // its own
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pipelines-'));
    try {
      writeFileSync(path.join(dir, 'x.json'), JSON.stringify({ type: 'tcp-x', description: 'x', delivery: 'push', params: { url: { type: 'url', protocols: ['tcp'], description: 'u' } }, output: ['-f', 'mpegts'], target: '{{url}}' }));
      const mine = loadDefinitions(dir);
      expect(mine.get('tcp-x')?.input).toEqual(hls.input);
      expect(mine.has('hls')).toBe(true);
      writeFileSync(path.join(dir, 'broken.json'), '{ "type": ');
      expect(() => loadDefinitions(dir)).toThrow(/broken\.json: not a JSON pipeline definition/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => loadDefinitions('/nonexistent-folder')).toThrow(/pipelines.extraDir: cannot read \/nonexistent-folder \(ENOENT\)/);
  });

  it('refuses an odd port where the definition says even', () => {
    expect(() => resolveParams(defs.get('rtp-mpegts')!, { host: '127.0.0.1', port: 5001 })).toThrow(/port: must be even/);
    expect(resolveParams(defs.get('rtp-mpegts')!, { host: '127.0.0.1', port: 5000 })).toMatchObject({ port: 5000 });
  });
});
