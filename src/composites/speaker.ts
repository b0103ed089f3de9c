import { open } from 'node:fs/promises';

// Who is speaking in a composite, for the speaker layout: from the level of each
// participant's decoded audio, which the compositor's filter graph writes as it mixes
// (astats RMS level per audio frame, one file per participant: filter-graph.ts), read here
// a few times a second. The choice has a hold time, so the picture does not flicker
// between two people talking over each other.

/** Louder than this (dBFS, RMS) counts as speaking; a quiet room is far below it. */
export const SPEAKING_DB = -45;

/** The mean RMS level (dBFS) of each participant's audio since the last read. */
export class LevelReader {
  private readonly offsets = new Map<string, number>();

  /** `files`: participant name -> the file its levels are written to. */
  async read(files: Map<string, string>): Promise<Map<string, number>> {
    const levels = new Map<string, number>();
    for (const [name, file] of files) {
      const text = await this.newText(file);
      let power = 0;
      let n = 0;
      for (const m of text.matchAll(/RMS_level=(-?[\d.]+|-inf)/g)) {
        n++;
        if (m[1] !== '-inf') power += 10 ** (Number(m[1]) / 10);
      }
      if (n) levels.set(name, power > 0 ? 10 * Math.log10(power / n) : -Infinity);
    }
    return levels;
  }

  private async newText(file: string): Promise<string> {
    const from = this.offsets.get(file) ?? 0;
    const handle = await open(file, 'r').catch(() => undefined);
    if (!handle) return '';
    try {
      const { size } = await handle.stat();
      if (size <= from) return '';
      const buf = Buffer.alloc(Math.min(size - from, 1 << 20));
      const { bytesRead } = await handle.read(buf, 0, buf.length, size - buf.length);
      this.offsets.set(file, size);
      return buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  }
}

export interface SpeakerOptions {
  /** The speaker stays at least this long before another takes the main area. */
  holdMs: number;
}

/**
 * Picks the speaker from successive level readings: the loudest participant above
 * SPEAKING_DB, once the current one has held the main area for `holdMs`; nobody speaking
 * keeps whoever spoke last.
 */
export class SpeakerChoice {
  speaker: string | undefined;
  private since = -Infinity;

  constructor(private readonly options: SpeakerOptions) {}

  /** Levels read at `now` (ms); returns true when the speaker changed. */
  update(levels: Map<string, number>, now: number, present: string[]): boolean {
    if (this.speaker !== undefined && !present.includes(this.speaker)) this.speaker = undefined;
    let loudest: string | undefined;
    let best = SPEAKING_DB;
    for (const [name, db] of levels) {
      if (present.includes(name) && db > best) {
        best = db;
        loudest = name;
      }
    }
    if (loudest === undefined || loudest === this.speaker) return false;
    if (this.speaker !== undefined && now - this.since < this.options.holdMs) return false;
    this.speaker = loudest;
    this.since = now;
    return true;
  }
}
