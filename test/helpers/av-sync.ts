import { spawn } from 'node:child_process';

// Lip sync, read back from what a player gets: a publisher with sync marks (white picture
// and a beep at the start of every second, werift-publisher's syncMarks) and ffmpeg
// decoding the output: when the picture turns white (signalstats) and when the beep
// starts (silencedetect), on the output's own timeline.

export interface SyncMarks {
  flashes: number[];
  beeps: number[];
}

export function readSyncMarks(source: string, seconds: number): Promise<SyncMarks> {
  const args = ['-hide_banner', '-nostats', '-t', String(seconds), '-i', source,
    '-map', '0:v:0', '-vf', 'signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-', '-f', 'null', '-',
    '-map', '0:a:0', '-af', 'silencedetect=n=-30dB:d=0.05', '-f', 'null', '-'];
  return new Promise((resolve, reject) => {
    const p = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const killer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('exit', (code) => {
      clearTimeout(killer);
      if (code !== 0) return reject(new Error(`ffmpeg exited ${code}: ${err.slice(-500)}`));
      const flashes: number[] = [];
      let time = 0;
      let lastY = 0;
      for (const line of out.split('\n')) {
        const t = /pts_time:([\d.]+)/.exec(line);
        if (t) time = Number(t[1]);
        const y = /YAVG=([\d.]+)/.exec(line);
        if (!y) continue;
        if (Number(y[1]) > 100 && lastY < 50) flashes.push(time);
        lastY = Number(y[1]);
      }
      const beeps = [...err.matchAll(/silence_end: ([\d.]+)/g)].map((m) => Number(m[1]));
      resolve({ flashes, beeps });
    });
  });
}

/** Median of (beep - flash) over the flashes that have a beep within half a second (s; > 0: sound late). */
export function audioOffset(m: SyncMarks): { offset: number; pairs: number } {
  const d: number[] = [];
  for (const f of m.flashes) {
    const b = m.beeps.reduce((best, x) => (Math.abs(x - f) < Math.abs(best - f) ? x : best), Infinity);
    if (Math.abs(b - f) < 0.5) d.push(b - f);
  }
  d.sort((a, b) => a - b);
  return { offset: d.length ? d[d.length >> 1] : NaN, pairs: d.length };
}
