import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

// A camera picture for quality tests and the benchmark. Chromium's built-in fake camera
// draws a plain pattern that OpenH264 codes at 720p in about 0.7 Mbit/s, so it never
// needs more than a slow uplink gives and never shows what a starved encoder does. This
// 10 s loop (ffmpeg's testsrc2: moving shapes and a counter, plus light sensor noise)
// needs about 2.5 Mbit/s at 720p30 for a clean picture (x264, CRF 26), like a webcam.
// Chromium plays it with --use-file-for-fake-video-capture (MJPEG, 1280x720 at 30 fps).

const run = promisify(execFile);
const FILE = path.join(os.tmpdir(), 'gw-fake-camera-1280x720-30-v1.mjpeg');

let making: Promise<string> | undefined;

/** The camera file, made once per machine (about 3 s, 15 MB in the temp folder). */
export function fakeCameraFile(): Promise<string> {
  making ??= (async () => {
    if (existsSync(FILE)) return FILE;
    const tmp = `${FILE}.${process.pid}.part`;
    await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30,noise=alls=4:allf=t', '-t', '10', '-c:v', 'mjpeg', '-q:v', '5', '-f', 'mjpeg', tmp], { timeout: 120_000 });
    await rename(tmp, FILE);
    return FILE;
  })();
  return making;
}
