import os from 'node:os';

// The machine's CPU use (all processes: the gateway, its ffmpegs, anything else) as a
// percentage of all its cores, since the previous sample. A node reports it in its
// heartbeat, and cluster.maxCpuPercent caps new publishers by it.

export class MachineCpu {
  private last = totals();
  private percent = 0;

  /** Takes a sample: the CPU used since the previous one. */
  sample(): number {
    const now = totals();
    const total = now.total - this.last.total;
    const idle = now.idle - this.last.idle;
    this.last = now;
    if (total > 0) this.percent = Math.round((1 - idle / total) * 1000) / 10;
    return this.percent;
  }

  /** The last sample. */
  get cpuPercent(): number {
    return this.percent;
  }
}

function totals(): { total: number; idle: number } {
  let total = 0;
  let idle = 0;
  for (const c of os.cpus()) {
    total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq;
    idle += c.times.idle;
  }
  return { total, idle };
}
