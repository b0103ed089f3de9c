import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
function file(name: string, text: string): string {
  const p = path.join(tmp, name);
  writeFileSync(p, text);
  return p;
}

describe('configuration', () => {
  it('has working defaults with nothing given', () => {
    const c = loadConfig({ argv: [], env: {} });
    expect(c.http).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(c.dataDir).toBe('./data');
    expect(c.hls).toMatchObject({ auto: true, segmentSeconds: 1 });
    expect(c.ice.servers).toEqual([]); // never a public STUN server unasked
    expect(c.ffmpeg.path).toBe('ffmpeg');
  });

  it('layers file < environment < flags', () => {
    const f = file('a.yaml', 'http:\n  port: 9000\n  host: 127.0.0.1\nhls:\n  segmentSeconds: 2\n');
    const c = loadConfig({ argv: ['--config', f, '--port', '9200'], env: { PORT: '9100', HLS_SEGMENT_SECONDS: '1.5', ICE_ADDRESSES: '127.0.0.1, 10.0.0.1' } });
    expect(c.http.port).toBe(9200);
    expect(c.http.host).toBe('127.0.0.1');
    expect(c.hls.segmentSeconds).toBe(1.5);
    expect(c.ice.addresses).toEqual(['127.0.0.1', '10.0.0.1']);
  });

  it('reads JSON files and ICE servers from the environment', () => {
    const f = file('b.json', JSON.stringify({ ice: { servers: [{ urls: 'turn:turn.example:3478', username: 'u', credential: 'p' }] } }));
    expect(loadConfig({ argv: ['--config', f], env: {} }).ice.servers[0]).toMatchObject({ username: 'u' });
    expect(loadConfig({ env: { ICE_SERVERS: 'stun:a:3478,stun:b:3478' } }).ice.servers).toEqual([{ urls: 'stun:a:3478' }, { urls: 'stun:b:3478' }]);
  });

  it('names the key of a bad value', () => {
    expect(() => loadConfig({ env: { PORT: '70000' } })).toThrow(/http\.port/);
    expect(() => loadConfig({ env: { PORT: 'eighty' } })).toThrow(/http\.port/);
    expect(() => loadConfig({ env: { HLS_SEGMENT_SECONDS: '0' } })).toThrow(/hls\.segmentSeconds/);
    expect(() => loadConfig({ env: { LOG_LEVEL: 'loud' } })).toThrow(/log\.level/);
    expect(() => loadConfig({ env: { RTP_PORT_MIN: '30000', RTP_PORT_MAX: '30001' } })).toThrow(/rtp/);
    expect(() => loadConfig({ env: { HLS_AUDIO: 'copy', HLS_SEGMENT_FORMAT: 'mpegts', HLS_LOW_LATENCY: 'false' } })).toThrow(/hls\.audio: hls\.audio copy needs hls\.segmentFormat fmp4/);
    expect(() => loadConfig({ env: { HLS_SEGMENT_FORMAT: 'mpegts' } })).toThrow(/hls\.segmentFormat: hls\.segmentFormat mpegts needs hls\.lowLatency false/);
    expect(loadConfig({ env: { HLS_SEGMENT_FORMAT: 'mpegts', HLS_LOW_LATENCY: 'false' } }).hls).toMatchObject({ lowLatency: false, segmentFormat: 'mpegts' });
    expect(loadConfig({ env: { HLS_AUDIO: 'copy' } }).hls).toMatchObject({ audio: 'copy', segmentFormat: 'fmp4', lowLatency: true });
  });

  it('refuses unknown keys, unknown flags, unreadable and malformed files', () => {
    expect(() => loadConfig({ argv: ['--config', file('c.yaml', 'htp:\n  port: 1\n')] })).toThrow(/htp: unknown key/);
    expect(() => loadConfig({ argv: ['--config', file('d.yaml', 'hls:\n  segmentSecs: 1\n')] })).toThrow(/hls\.segmentSecs: unknown key/);
    expect(() => loadConfig({ argv: ['--prot', '1'] })).toThrow(ConfigError);
    expect(() => loadConfig({ argv: ['--config', path.join(tmp, 'missing.yaml')] })).toThrow(/cannot read config file/);
    expect(() => loadConfig({ argv: ['--config', file('e.json', '{nope')] })).toThrow(/not valid JSON/);
  });
});
