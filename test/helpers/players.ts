import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

// Real players and receivers for output tests. VLC refuses to run as root, so it runs as
// "nobody" and writes into a folder everybody may write to.

export async function playerDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'player-'));
  await chmod(dir, 0o777);
  return dir;
}

function run(cmd: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
    });
  });
}

/** cvlc (as nobody) plays `source` for `seconds` and remuxes what it got into a TS file. */
export async function vlcRecord(source: string, dir: string, seconds = 4): Promise<string> {
  const out = path.join(dir, `vlc-${Date.now()}.ts`);
  await run('runuser', ['-u', 'nobody', '--', 'cvlc', '-I', 'dummy', '--play-and-exit', `--run-time=${seconds}`, source, '--sout', `#std{access=file,mux=ts,dst=${out}}`], (seconds + 15) * 1000);
  return out;
}

/**
 * ffplay, headless, opens `source`; returns what it printed about the input once it has
 * described `expectStreams` streams (or after `timeoutMs`), then is stopped.
 */
export function ffplayStreams(source: string, expectStreams = 2, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn('ffplay', ['-hide_banner', '-nodisp', '-protocol_whitelist', 'file,udp,rtp,http,tcp', '-i', source], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, SDL_AUDIODRIVER: 'dummy', SDL_VIDEODRIVER: 'dummy' },
    });
    let text = '';
    const finish = () => {
      clearTimeout(timer);
      p.kill('SIGKILL');
      resolve(text);
    };
    const timer = setTimeout(finish, timeoutMs);
    p.stderr.on('data', (d: Buffer) => {
      text += d.toString();
      if ((text.match(/Stream #0:\d/g) ?? []).length >= expectStreams) setTimeout(finish, 200);
    });
    p.on('exit', finish);
  });
}

/**
 * ffmpeg opens `source` with its default probing (plus `inputArgs`) and decodes one video
 * frame: the milliseconds from its start to the frame's first bytes on its stdout (NaN
 * when none came within `timeoutMs`), and its debug log (how its probe ended).
 */
export function ffmpegFirstFrame(source: string, inputArgs: string[] = [], timeoutMs = 20_000): Promise<{ ms: number; log: string }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const p = spawn('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'debug', ...inputArgs, '-i', source, '-map', '0:v:0', '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let ms = NaN;
    let log = '';
    p.stdout.on('data', () => {
      if (Number.isNaN(ms)) ms = performance.now() - started;
    });
    p.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const killer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', () => {
      clearTimeout(killer);
      resolve({ ms, log });
    });
  });
}

/** An ffmpeg that receives (SRT listener, UDP reader...) and copies `seconds` of it to a file. */
export function ffmpegReceiver(input: string, out: string, seconds: number): { done: Promise<number | null> } {
  const p = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-i', input, '-t', String(seconds), '-c', 'copy', '-f', 'mpegts', out], { stdio: 'ignore' });
  const killer = setTimeout(() => p.kill('SIGKILL'), (seconds + 30) * 1000);
  return { done: new Promise((r) => p.on('exit', (code) => (clearTimeout(killer), r(code)))) };
}

export interface HlsPlayer {
  /** Video frames the player has decoded so far. */
  frames(): number;
  /** What it complained about (warnings and errors). */
  complaints(): string[];
  stop(): Promise<void>;
}

/**
 * ffmpeg as an HLS client that keeps reading a live playlist and decoding its video, the
 * way a player does: its frame count tells whether pictures keep coming.
 */
export function hlsPlayer(playlist: string): HlsPlayer {
  const p = spawn('ffmpeg', ['-hide_banner', '-nostats', '-loglevel', 'warning', '-progress', 'pipe:1', '-i', playlist, '-map', '0:v:0', '-f', 'null', '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let frames = 0;
  const complaints: string[] = [];
  p.stdout.on('data', (d: Buffer) => {
    for (const m of d.toString().matchAll(/^frame=(\d+)$/gm)) frames = Number(m[1]);
  });
  p.stderr.on('data', (d: Buffer) => complaints.push(...d.toString().split('\n').filter((l) => l.trim())));
  const killer = setTimeout(() => p.kill('SIGKILL'), 120_000); // never outlive the test
  const exited = new Promise<void>((r) => p.on('exit', () => (clearTimeout(killer), r())));
  return {
    frames: () => frames,
    complaints: () => complaints,
    stop: async () => {
      p.kill('SIGKILL');
      await exited;
    },
  };
}
