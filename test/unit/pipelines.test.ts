import { describe, expect, it } from 'vitest';
import { buildArgs, loadDefinitions, parseDefinition, resolveParams } from '../../src/pipelines/definition.js';

describe('pipeline definitions', () => {
  const defs = loadDefinitions();
  const hls = defs.get('hls')!;

  it('loads the HLS definition from pipelines/', () => {
    expect(hls.type).toBe('hls');
    expect(hls.params.segmentSeconds.default).toBe(1);
  });

  it('copies video and transcodes audio to AAC with the stream channel count', () => {
    const args = buildArgs(hls, { ...resolveParams(hls, { segmentSeconds: 2 }), dir: '/d', stream: 's', audioChannels: 1, audioBitrate: '96k' }, { video: true, audio: true });
    const out = args.outputOptions.join(' ');
    expect(out).toContain('-c:v copy');
    expect(out).toContain('-c:a aac -b:a 96k -ac 1');
    expect(out).toContain('-hls_time 2');
    expect(args.target).toBe('/d/index.m3u8');
    expect(args.keyframeIntervalSeconds).toBe(2);
    expect(args.inputOptions).toContain('-protocol_whitelist');
  });

  it('leaves out the options of a missing track kind', () => {
    const args = buildArgs(hls, { ...resolveParams(hls), dir: '/d', stream: 's', audioChannels: 2, audioBitrate: '128k' }, { video: true, audio: false });
    expect(args.outputOptions.join(' ')).not.toContain('aac');
  });

  it('checks parameters against the definition', () => {
    expect(() => resolveParams(hls, { segmentSeconds: 0.1 })).toThrow(/segmentSeconds: must be >= 0.5/);
    expect(() => resolveParams(hls, { listSize: 2.5 })).toThrow(/listSize: must be an integer/);
    expect(() => resolveParams(hls, { listSize: 'six' })).toThrow(/listSize: must be a number/);
  });

  it('refuses a definition with an unknown placeholder', () => {
    expect(() => parseDefinition({ type: 'x', description: '', input: [], output: ['{{nope}}'], target: 'a' })).toThrow(/unknown placeholder \{\{nope\}\}/);
  });
});
