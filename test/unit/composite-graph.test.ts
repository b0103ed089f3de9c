import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { filterGraph } from '../../src/composites/filter-graph.js';
import { LevelReader, SpeakerChoice } from '../../src/composites/speaker.js';

// The composite's filter graph (pure: filled from pipelines/shared/composite-graph.json)
// and the speaker choice. The graph is run by real ffmpeg in test/e2e/composite.test.ts.

const size = { width: 1280, height: 720 };

describe('composite filter graph', () => {
  it('lays each picture over the background at its grid tile, in join order, and mixes every sound', () => {
    const g = filterGraph({ layout: 'grid', size, fps: 30, participants: [{ name: 'a', video: 0, audio: 0 }, { name: 'b', video: 1, audio: 1 }, { name: 'c', video: 2, audio: 2 }] });
    const parts = g.split(';');
    expect(parts[0]).toBe('color=c=0x202020:s=1280x720:r=30[bg]'); // paced by the pictures, not by a clock
    expect(parts).toContain('[0:v:1]scale=w=640:h=360:force_original_aspect_ratio=decrease:force_divisible_by=2,setsar=1[p1]');
    // a, b side by side on top, c centred below.
    expect(g).toContain('[bg][p0]overlay=x=0+(640-w)/2:y=0+(360-h)/2');
    expect(g).toContain('[t0][p1]overlay=x=640+(640-w)/2:y=0+(360-h)/2');
    expect(g).toContain('[t1][p2]overlay=x=320+(640-w)/2:y=360+(360-h)/2');
    expect(g).toContain('[t2]format=yuv420p[vout]');
    expect(g).toContain('[s0][s1][s2]amix=inputs=3:duration=longest:dropout_transition=0:normalize=0');
    expect(g).toMatch(/asplit=2\[aout\]\[aopus\]$/);
  });

  it('gives a participant without video a tile with its name, and one without audio nothing in the mix', () => {
    const g = filterGraph({ layout: 'grid', size, fps: 30, participants: [{ name: 'cam', video: 0 }, { name: 'phone-1', audio: 0 }] });
    expect(g).toContain('[t0]drawbox=x=640:y=0:w=640:h=720');
    expect(g).toContain('drawtext=text=phone-1');
    expect(g).toContain('[0:a:0]aresample');
    expect(g).toContain('[s1]amix=inputs=1');
    expect(g).not.toContain('[s0]');
  });

  it('paces itself by the clock when no participant sends video, and is silent without audio', () => {
    const g = filterGraph({ layout: 'grid', size, fps: 25, participants: [{ name: 'mic' }] });
    expect(g.split(';')[0]).toBe('color=c=0x202020:s=1280x720:r=25,realtime[bg]');
    expect(g).toContain('anullsrc=r=48000:cl=stereo,arealtime,asplit=2[aout][aopus]');
  });

  it('puts the speaker in the main area and writes levels where asked (only to a plain path)', () => {
    const g = filterGraph({ layout: 'speaker', size, fps: 30, speaker: 1, participants: [{ name: 'a', video: 0, audio: 0 }, { name: 'b', video: 1, audio: 1 }], levelFile: (i) => `/data/call/level-${i}.txt` });
    expect(g).toContain('[0:v:1]scale=w=1280:h=540');
    expect(g).toContain('[t0][p1]overlay=x=0+(1280-w)/2:y=0+(540-h)/2');
    expect(g).toContain('file=/data/call/level-0.txt');
    const odd = filterGraph({ layout: 'speaker', size, fps: 30, participants: [{ name: 'a', audio: 0 }], levelFile: () => '/data/a:b/level.txt' });
    expect(odd).not.toContain('ametadata');
  });
});

describe('speaker choice', () => {
  it('takes the loudest above the speaking level, and keeps the speaker for the hold time', () => {
    const s = new SpeakerChoice({ holdMs: 2000 });
    const all = ['a', 'b'];
    expect(s.update(new Map([['a', -70], ['b', -80]]), 0, all)).toBe(false); // nobody speaks
    expect(s.update(new Map([['a', -20], ['b', -60]]), 100, all)).toBe(true);
    expect(s.speaker).toBe('a');
    expect(s.update(new Map([['a', -60], ['b', -15]]), 1000, all)).toBe(false); // held
    expect(s.update(new Map([['a', -60], ['b', -15]]), 2200, all)).toBe(true);
    expect(s.speaker).toBe('b');
    expect(s.update(new Map([['a', -90], ['b', -90]]), 9000, all)).toBe(false); // silence keeps the last speaker
    expect(s.speaker).toBe('b');
    expect(s.update(new Map([['a', -20]]), 9100, ['a'])).toBe(true); // b left
  });

  it('reads the mean level of what ffmpeg wrote since the last read', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'levels-'));
    const file = path.join(dir, 'level-0.txt');
    await writeFile(file, 'frame:0 pts:0 pts_time:0\nlavfi.astats.Overall.RMS_level=-20.000000\nframe:1 pts:960 pts_time:0.02\nlavfi.astats.Overall.RMS_level=-20.000000\n');
    const r = new LevelReader();
    const files = new Map([['a', file]]);
    expect((await r.read(files)).get('a')).toBeCloseTo(-20, 5);
    expect((await r.read(files)).has('a')).toBe(false); // nothing new
    await appendFile(file, 'frame:2\nlavfi.astats.Overall.RMS_level=-inf\n');
    expect((await r.read(files)).get('a')).toBe(-Infinity);
    await rm(dir, { recursive: true, force: true });
  });
});
