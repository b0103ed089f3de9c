import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

// ffmpeg processes a killed gateway left behind. A gateway that is SIGKILLed cannot stop
// its ffmpegs: they go on writing into its data folder until their input has been silent
// for a while (15-20 s). A gateway started again meanwhile would measure the recordings
// they still write (an MKV then had no duration at all) and reuse their folders. So at
// start-up, ffmpegs whose command line names a file in this gateway's data folder are
// asked to finish (SIGTERM), then killed.

const GRACE_MS = 3000;

/** PIDs of ffmpeg processes (not this process's children) working in `dataDir`. */
export async function orphanedFfmpegs(dataDir: string): Promise<number[]> {
  const root = `${path.resolve(dataDir)}${path.sep}`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const [cmdline, stat] = await Promise.all([readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''), readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')]);
    const args = cmdline.split('\0').filter(Boolean);
    if (!args[0] || !/ffmpeg$/.test(path.basename(args[0]))) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === process.pid) continue;
    if (args.some((a) => a.startsWith(root) || a.includes(`=${root}`))) pids.push(pid);
  }
  return pids;
}

/** Stops what orphanedFfmpegs finds; resolves with how many there were. */
export async function stopOrphanedFfmpegs(dataDir: string): Promise<number> {
  const pids = await orphanedFfmpegs(dataDir);
  if (pids.length === 0) return 0;
  const signal = (pid: number, s: NodeJS.Signals | 0) => {
    try {
      process.kill(pid, s);
      return true;
    } catch {
      return false; // gone already
    }
  };
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + GRACE_MS;
  while (Date.now() < deadline && pids.some((p) => signal(p, 0))) await sleep(100);
  for (const pid of pids) signal(pid, 'SIGKILL');
  return pids.length;
}
