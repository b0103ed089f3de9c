import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { procStat, type ProcStat } from '../src/pipelines/process-cpu.js';

// Reading CPU time and memory of processes from /proc (Linux only): the gateway, its
// ffmpeg children, the whole machine. Everything here is a cheap synchronous read.

// One reader of /proc/<pid>/stat for the gateway (its encoders' CPU in the API) and the bench.
export { procStat, type ProcStat };

/** A "Name:   123 kB" line of a /proc file, in bytes; 0 when the process is gone. */
function kbField(file: string, name: string): number {
  try {
    const m = new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident set size in bytes (VmRSS), 0 when the process is gone. */
export function rssBytes(pid: number): number {
  return kbField(`/proc/${pid}/status`, 'VmRSS');
}

/** Proportional set size in bytes (shared library pages divided among their users), 0 if unknown. */
export function pssBytes(pid: number): number {
  return kbField(`/proc/${pid}/smaps_rollup`, 'Pss');
}

/** Direct children of a process (e.g. the gateway's ffmpeg processes). */
export function childrenOf(ppid: number): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s && s.ppid === ppid) out.push(s);
  }
  return out;
}

/** Whole-machine CPU counters from /proc/stat, in ticks. */
export interface SystemCpu {
  busy: number;
  total: number;
}

export function systemCpu(): SystemCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is already in user)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = v;
  const busy = user + nice + system + irq + softirq + (steal ?? 0);
  return { busy, total: busy + idle + (iowait ?? 0) };
}

/** Busy share of all cores between two readings, 0..100 (100 = every core busy). */
export function systemBusyPercent(a: SystemCpu, b: SystemCpu): number {
  const total = b.total - a.total;
  return total > 0 ? (100 * (b.busy - a.busy)) / total : 0;
}

/** One reading of a process and its children. */
export interface TreeSample {
  at: number;
  cpu: number;
  rss: number;
  children: Map<number, { comm: string; cpu: number; rss: number; pss: number }>;
}

export function sampleTree(pid: number, withPss = false): TreeSample {
  const self = procStat(pid);
  const children = new Map<number, { comm: string; cpu: number; rss: number; pss: number }>();
  for (const c of childrenOf(pid)) {
    children.set(c.pid, { comm: c.comm, cpu: c.cpuSeconds, rss: rssBytes(c.pid), pss: withPss ? pssBytes(c.pid) : 0 });
  }
  return { at: performance.now(), cpu: self?.cpuSeconds ?? 0, rss: rssBytes(pid), children };
}

/** CPU used between two samples as % of one core: the process itself and its children summed. */
export function treeCpuPercent(a: TreeSample, b: TreeSample): { self: number; children: number; childCount: number } {
  const secs = (b.at - a.at) / 1000;
  let children = 0;
  for (const [pid, c] of b.children) {
    // A child started inside the window counts from zero.
    children += c.cpu - (a.children.get(pid)?.cpu ?? 0);
  }
  return { self: (100 * (b.cpu - a.cpu)) / secs, children: (100 * children) / secs, childCount: b.children.size };
}

export function sumChildren(s: TreeSample, key: 'rss' | 'pss'): number {
  let total = 0;
  for (const c of s.children.values()) total += c[key];
  return total;
}

/** Socket inodes a process holds ("socket:[inode]" fd links). */
export function socketInodes(pid: number): Set<number> {
  const out = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Datagrams the kernel dropped per UDP socket (receive buffer full), by inode, from /proc/net/udp{,6}. */
export function udpDropsByInode(): Map<number, number> {
  const out = new Map<number, number>();
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 13) continue;
      out.set(Number(f[9]), Number(f[12]));
    }
  }
  return out;
}

/** UDP receive drops of the sockets of some processes, per inode (for deltas). */
export function udpDrops(pids: number[]): Map<number, number> {
  const all = udpDropsByInode();
  const out = new Map<number, number>();
  for (const pid of pids) {
    for (const inode of socketInodes(pid)) {
      const d = all.get(inode);
      if (d !== undefined) out.set(inode, d);
    }
  }
  return out;
}

/** Drops between two udpDrops() readings (a socket opened in between counts from zero). */
export function udpDropsDelta(a: Map<number, number>, b: Map<number, number>): number {
  let total = 0;
  for (const [inode, d] of b) total += d - (a.get(inode) ?? 0);
  return total;
}

/** CPU seconds of every process on the machine, by pid (for "who else was busy"). */
export function allProcesses(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s) out.set(s.pid, s);
  }
  return out;
}

/** The busiest processes between two allProcesses() readings, leaving out `exclude`. */
export function topProcesses(a: Map<number, ProcStat>, b: Map<number, ProcStat>, seconds: number, exclude: Set<number>, count = 3): { pid: number; comm: string; cpuPercent: number }[] {
  const out: { pid: number; comm: string; cpuPercent: number }[] = [];
  for (const [pid, s] of b) {
    if (exclude.has(pid) || exclude.has(s.ppid)) continue;
    const before = a.get(pid)?.cpuSeconds ?? 0;
    const cpuPercent = (100 * (s.cpuSeconds - before)) / seconds;
    if (cpuPercent >= 1) out.push({ pid, comm: s.comm, cpuPercent: Math.round(cpuPercent * 10) / 10 });
  }
  return out.sort((x, y) => y.cpuPercent - x.cpuPercent).slice(0, count);
}
