import { EventEmitter } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import type { BuiltArgs } from './definition.js';

// The one module that runs ffmpeg: every output, the shared AAC and H.264 encoders (and
// whatever else the gateway runs ffmpeg for) start their process here. It uses
// fluent-ffmpeg, through its public API only, and nothing else in the gateway knows
// fluent-ffmpeg: replacing it (it was archived upstream in May 2025) is this one file.
//
// Stopping asks ffmpeg to finish (SIGINT: the HLS muxer writes #EXT-X-ENDLIST, MP4 gets
// its index), then SIGKILLs it if it has not exited in time. The last stderr lines are
// kept for error reports. fluent-ffmpeg gives the command line on 'start' but not the
// process: its pid (health, CPU, the CLI's last-resort kill) is read from /proc, the one
// child of this process running exactly that command line.

/**
 * fluent-ffmpeg checks formats and encoders before its first run in a process, by running
 * `ffmpeg -formats` and `ffmpeg -encoders` (then caches them): about 0.7 s on a busy
 * 2-core machine, which made the first stream's HLS start that much later. Doing it once
 * at start-up takes it off the publisher's path. Errors are left to the first real run.
 */
export function warmUpFfmpeg(ffmpegPath: string): Promise<void> {
  ffmpeg.setFfmpegPath(ffmpegPath);
  const step = (f: (cb: (err: Error | null) => void) => void) => new Promise<void>((resolve) => f(() => resolve()));
  return step((cb) => ffmpeg.getAvailableFormats(cb)).then(() => step((cb) => ffmpeg.getAvailableEncoders(cb)));
}

export interface FfmpegExit {
  /** True when ffmpeg exited because stop() asked it to. */
  requested: boolean;
  /** ffmpeg's error message (non-zero exit or signal), if any. */
  error?: string;
  lastLines: string[];
}

export interface FfmpegRunnerEvents {
  start: [commandLine: string];
  exit: [FfmpegExit];
}

export class FfmpegRunner extends EventEmitter<FfmpegRunnerEvents> {
  private readonly command: ffmpeg.FfmpegCommand;
  private readonly lines: string[] = [];
  private stopRequested = false;
  private started = false;
  private exited = false;
  private stopTimeoutMs = 5000;
  private killTimer: NodeJS.Timeout | undefined;
  private readonly exitPromise: Promise<FfmpegExit>;
  pid: number | undefined;
  /** Bytes ffmpeg has written to its output, from its -progress reports. */
  bytesOut = 0;
  /** How far its output has come, in seconds of media, from its -progress reports (0 until it has written something). */
  outputSeconds = 0;

  /** `stdout`: where ffmpeg's output goes when the target is pipe:1 (left open when ffmpeg exits). */
  constructor(ffmpegPath: string, input: string, args: BuiltArgs, stdout?: Writable) {
    super();
    this.command = ffmpeg({ stdoutLines: 50 }).setFfmpegPath(ffmpegPath).input(input).inputOptions(args.inputOptions);
    if (stdout) this.command.output(stdout, { end: false });
    else this.command.output(args.target);
    // fluent-ffmpeg adds -y itself for file targets (and ffmpeg refuses -y with -n): a
    // pipeline that must never overwrite has its target created exclusively first (PipelineRun).
    this.command.outputOptions(['-nostats', '-loglevel', 'level+warning', '-progress', 'pipe:2', '-stats_period', '1', '-y', ...args.outputOptions]);
    this.exitPromise = new Promise((resolve) => {
      const done = (error?: string) => {
        if (this.exited) return;
        this.exited = true;
        const exit: FfmpegExit = { requested: this.stopRequested, error, lastLines: this.lines.slice(-20) };
        this.emit('exit', exit);
        resolve(exit);
      };
      this.command.on('start', (cmd: string) => {
        this.started = true;
        this.emit('start', cmd);
        if (this.stopRequested) this.sendQuit(); // stop() came before the spawn
        void childRunning(cmd).then((pid) => {
          if (!this.exited) this.pid = pid;
        });
      });
      this.command.on('stderr', (line: string) => {
        // -progress lines ("key=value") give the output size; everything else is a message.
        const progress = /^(total_size|out_time_us)=(\d+)$/.exec(line);
        if (progress) {
          if (progress[1] === 'total_size') this.bytesOut = Number(progress[2]);
          else this.outputSeconds = Number(progress[2]) / 1e6;
          return;
        }
        if (/^\w+=/.test(line)) return;
        this.lines.push(line);
        if (this.lines.length > 200) this.lines.splice(0, 100);
      });
      this.command.on('end', () => done());
      this.command.on('error', (err: Error) => done(this.stopRequested ? undefined : err.message));
    });
  }

  start(): void {
    this.command.run();
  }

  /**
   * ffmpeg's own clean stop: on SIGINT it leaves its main loop and writes the trailers
   * (#EXT-X-ENDLIST, MP4 index). Its main loop only turns while input arrives, so a
   * silent input keeps it waiting; then it is SIGKILLed after the timeout. Never a second
   * SIGINT: ffmpeg 5.1 then aborts its writes and leaves a 0-byte playlist. Whoever stops
   * a silent output finishes its files itself (see PipelineRun).
   */
  private sendQuit(): void {
    if (!this.started || this.exited) return; // not spawned yet: 'start' sends it
    this.command.kill('SIGINT');
    this.killTimer ??= setTimeout(() => this.command.kill('SIGKILL'), this.stopTimeoutMs);
  }

  get running(): boolean {
    return !this.exited;
  }

  /** Asks ffmpeg to finish (SIGINT), kills it after `timeoutMs`. Resolves when it has exited. */
  async stop(timeoutMs: number): Promise<FfmpegExit> {
    if (this.exited) return this.exitPromise;
    this.stopRequested = true;
    this.stopTimeoutMs = timeoutMs;
    this.sendQuit();
    const exit = await this.exitPromise;
    if (this.killTimer) clearTimeout(this.killTimer);
    return exit;
  }
}

/**
 * The pid of this process's child running `commandLine` (as fluent-ffmpeg prints it:
 * the program, then its arguments joined by spaces), from /proc (Linux); undefined where
 * /proc is not there or the child is gone already.
 */
async function childRunning(commandLine: string): Promise<number | undefined> {
  const args = commandLine.slice(commandLine.indexOf(' ') + 1);
  const tasks = await readdir(`/proc/${process.pid}/task`).catch(() => [] as string[]);
  for (const task of tasks) {
    const children = await readFile(`/proc/${process.pid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const child of children.split(' ').filter(Boolean)) {
      const argv = (await readFile(`/proc/${child}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean);
      if (argv.slice(1).join(' ') === args) return Number(child);
    }
  }
  return undefined;
}
