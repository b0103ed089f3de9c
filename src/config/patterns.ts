import type { Config } from './schema.js';

// Stream-name patterns in the configuration ("studio-*") and the settings they select.

/** "studio-*" style patterns: `*` matches any run of characters, everything else itself. */
export function matchesPattern(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(name);
}

/** The video bitrate range for a stream: the first matching `video.streams` entry over the defaults. */
export function videoBitrateFor(video: Config['video'], name: string): { maxKbps: number; startKbps: number } {
  const o = video.streams.find((s) => matchesPattern(s.streams, name));
  return { maxKbps: o?.maxBitrateKbps ?? video.maxBitrateKbps, startKbps: o?.startBitrateKbps ?? video.startBitrateKbps };
}
