import { readFileSync } from 'node:fs';

// How much CPU a child process (an ffmpeg) uses, from /proc/<pid>/stat: user + system
// time between two readings, as a share of one core. Linux only; elsewhere undefined.

/** /proc times are in USER_HZ, 100 per second on every architecture Linux and Node run on. */
const USER_HZ = 100;

export interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, in seconds. */
  cpuSeconds: number;
}

/** /proc/<pid>/stat, or undefined when the process is gone (the bench reads it too). */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ..." — comm may hold spaces and parentheses: split after the last ')'.
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state); utime is field 14, stime field 15.
  return { pid, ppid: Number(f[1]), comm: text.slice(text.indexOf('(') + 1, close), cpuSeconds: (Number(f[11]) + Number(f[12])) / USER_HZ };
}

export class ProcessCpu {
  /** Percent of one core between the last two readings of the same process. */
  percent: number | undefined;
  private last: { pid: number; cpuSeconds: number; at: number } | undefined;

  /** Reads the process's CPU time (call it every second or so while it runs). */
  sample(pid: number | undefined): void {
    const stat = pid === undefined ? undefined : procStat(pid);
    const now = performance.now();
    if (stat === undefined) {
      this.last = this.percent = undefined;
      return;
    }
    if (this.last?.pid === stat.pid) this.percent = Math.round(((stat.cpuSeconds - this.last.cpuSeconds) / ((now - this.last.at) / 1000)) * 1000) / 10;
    this.last = { pid: stat.pid, cpuSeconds: stat.cpuSeconds, at: now };
  }
}
