import { execFile } from 'node:child_process';

// Start-up check: is ffmpeg there, and new enough? A missing ffmpeg is the first thing a
// new user hits; it gets one clear line with the install hint instead of a stack trace.

export const MIN_FFMPEG_MAJOR = 5;

export class FfmpegMissing extends Error {}

export function ffmpegInstallHint(): string {
  return 'install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg) or set FFMPEG_PATH';
}

/** Resolves to ffmpeg's version string; throws FfmpegMissing with a hint otherwise. */
export function checkFfmpeg(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(path, ['-hide_banner', '-version'], { timeout: 10_000 }, (err, stdout) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'not found' : `did not run (${err.message.split('\n')[0]})`;
        reject(new FfmpegMissing(`ffmpeg "${path}" ${why}: ${ffmpegInstallHint()}`));
        return;
      }
      const m = /ffmpeg version (n?(\d+)\.[^\s]*|\S+)/.exec(stdout);
      if (!m) {
        reject(new FfmpegMissing(`"${path}" is not ffmpeg (its -version printed no "ffmpeg version" line): ${ffmpegInstallHint()}`));
        return;
      }
      const version = m[1];
      const major = m?.[2] ? Number(m[2]) : undefined;
      // Git builds print "N-12345-g..." with no number: accept them.
      if (major !== undefined && major < MIN_FFMPEG_MAJOR) {
        reject(new FfmpegMissing(`ffmpeg ${version} at "${path}" is too old (need ${MIN_FFMPEG_MAJOR} or newer): ${ffmpegInstallHint()}`));
        return;
      }
      resolve(version);
    });
  });
}
