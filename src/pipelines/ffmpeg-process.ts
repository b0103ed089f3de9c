import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import type { BuiltArgs } from './definition.js';

// One running ffmpeg, started through fluent-ffmpeg. Stopping asks ffmpeg to finish (the HLS
// muxer writes #EXT-X-ENDLIST, MP4 gets its index), then SIGKILLs it if it has not exited
// in time. The last stderr lines are kept for error reports.

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

export interface FfmpegProcessEvents {
  start: [commandLine: string];
  exit: [FfmpegExit];
}

export class FfmpegProcess extends EventEmitter<FfmpegProcessEvents> {
  private readonly command: ffmpeg.FfmpegCommand;
  private readonly lines: string[] = [];
  private stopRequested = false;
  private exited = false;
  private stopTimeoutMs = 5000;
  private killTimer: NodeJS.Timeout | undefined;
  private readonly exitPromise: Promise<FfmpegExit>;
  pid: number | undefined;
  /** Bytes ffmpeg has written to its output, from its -progress reports. */
  bytesOut = 0;

  /** `stdout`: where ffmpeg's output goes when the target is pipe:1 (left open when ffmpeg exits). */
  constructor(ffmpegPath: string, input: string, args: BuiltArgs, stdout?: Writable) {
    super();
    this.command = ffmpeg({ stdoutLines: 50 }).setFfmpegPath(ffmpegPath).input(input).inputOptions(args.inputOptions);
    if (stdout) this.command.output(stdout, { end: false });
    else this.command.output(args.target);
    // fluent-ffmpeg adds -y itself for file targets (and ffmpeg exits when given -y and -n),
    // so a definition that must not overwrite is guarded before the start (PipelineOutput).
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
        this.pid = this.proc()?.pid;
        this.emit('start', cmd);
        if (this.stopRequested) this.sendQuit(); // stop() came before the spawn
      });
      this.command.on('stderr', (line: string) => {
        // -progress lines ("key=value") give the output size; everything else is a message.
        const progress = /^(total_size|out_time_us)=(\d+)$/.exec(line);
        if (progress) {
          if (progress[1] === 'total_size') this.bytesOut = Number(progress[2]);
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
   * The child's pid (health, metrics, the CLI's last-resort kill). fluent-ffmpeg's public
   * API gives the command line on 'start' but not the process: this is the one place that
   * reads its `ffmpegProc` field. Signals go through its public kill().
   */
  private proc(): ChildProcess | undefined {
    return (this.command as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
  }

  /**
   * ffmpeg's own clean stop: on SIGINT it leaves its main loop and writes the trailers
   * (#EXT-X-ENDLIST, MP4 index). Its main loop only turns while input arrives, so a
   * silent input keeps it waiting; then it is SIGKILLed after the timeout. Never a second
   * SIGINT: ffmpeg 5.1 then aborts its writes and leaves a 0-byte playlist. Whoever stops
   * a silent output finishes its files itself (see PipelineOutput).
   */
  private sendQuit(): void {
    if (this.pid === undefined) return; // not spawned yet: 'start' sends it
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
