import { readFileSync } from 'node:fs';

// How much CPU a child process (an ffmpeg) uses, from /proc/<pid>/stat: user + system
// time between two readings, as a share of one core. Linux only; elsewhere undefined.

/** /proc times are in USER_HZ, 100 per second on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, hence the last ')'): utime is the 14th field, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

export class ProcessCpu {
  /** Percent of one core between the last two readings of the same process. */
  percent: number | undefined;
  private last: { pid: number; ticks: number; at: number } | undefined;

  /** Reads the process's CPU time (call it every second or so while it runs). */
  sample(pid: number | undefined): void {
    const ticks = pid === undefined ? undefined : cpuTicks(pid);
    const now = performance.now();
    if (pid === undefined || ticks === undefined) {
      this.last = this.percent = undefined;
      return;
    }
    if (this.last?.pid === pid) this.percent = Math.round(((ticks - this.last.ticks) / TICKS_PER_SECOND / ((now - this.last.at) / 1000)) * 1000) / 10;
    this.last = { pid, ticks, at: now };
  }
}
