import { execFile } from 'node:child_process';

export interface ProbeStream {
  codec_type: string;
  codec_name: string;
  profile?: string;
  width?: number;
  height?: number;
  channels?: number;
  sample_rate?: string;
}

export interface Probe {
  streams: ProbeStream[];
  format: { duration?: string; format_name: string };
}

/** Runs the real ffprobe on a file or URL and returns its JSON. */
export function ffprobe(target: string, extra: string[] = []): Promise<Probe> {
  return new Promise((resolve, reject) => {
    execFile(
      'ffprobe',
      ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_format', ...extra, target],
      { timeout: 30_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`ffprobe ${target}: ${stderr || err.message}`)) : resolve(JSON.parse(stdout) as Probe)),
    );
  });
}
