import type { Config } from './schema.js';
import { matchesPattern } from './wildcard.js';

// The settings a stream-name pattern in the configuration ("studio-*") selects.

/** The video bitrate range for a stream: the first matching `video.streams` entry over the defaults. */
export function videoBitrateFor(video: Config['video'], name: string): { maxKbps: number; startKbps: number } {
  const o = video.streams.find((s) => matchesPattern(s.streams, name));
  return { maxKbps: o?.maxBitrateKbps ?? video.maxBitrateKbps, startKbps: o?.startBitrateKbps ?? video.startBitrateKbps };
}
