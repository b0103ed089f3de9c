import { describe, expect, it } from 'vitest';
import { checkFfmpeg } from '../../src/pipelines/ffmpeg-check.js';

// The start-up check finds a missing or wrong ffmpeg before any publisher does.

describe('ffmpeg check', () => {
  it('accepts the installed ffmpeg and reads its version', async () => {
    expect(await checkFfmpeg('ffmpeg')).toMatch(/^\d+\.\d+/);
  });

  it('refuses a program that is not ffmpeg (FFMPEG_PATH=/bin/true was once accepted)', async () => {
    await expect(checkFfmpeg('/bin/true')).rejects.toThrow(/"\/bin\/true" is not ffmpeg \(its -version printed no "ffmpeg version" line\): install it/);
  });

  it('names a missing ffmpeg and how to install it', async () => {
    await expect(checkFfmpeg('/nonexistent/ffmpeg')).rejects.toThrow(/ffmpeg "\/nonexistent\/ffmpeg" not found: install it \(Debian\/Ubuntu: apt-get install ffmpeg/);
  });
});
