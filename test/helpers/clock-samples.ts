// What a glass-to-glass viewer collected, and the figures made from it. Pure functions.
//
// Every clock the publisher and the viewers read is this machine's Date.now(), so
// latency = when the viewer showed (or decoded) the picture - the time drawn into it.

export interface ClockSample {
  /** The publisher's Date.now() when it drew the picture (read from the block code). */
  captureMs: number;
  /** Date.now() when the viewer presented the picture (Chromium) or its decoder gave it out (ffmpeg). */
  shownAtMs: number;
  /** The picture's presentation time in the viewer's stream, ms (ffmpeg's showinfo), when known. */
  ptsMs?: number;
}

export interface ViewerRun {
  viewer: string;
  /** Date.now() when the viewer was started: the page opened, ffmpeg spawned. */
  startedAt: number;
  /** Date.now() when its first picture came out (decoded or not). */
  firstPictureAt?: number;
  /** Pictures seen. */
  pictures: number;
  /** Those whose code was read, in order of arrival. */
  samples: ClockSample[];
  /** Why the run gave no figures. */
  error?: string;
  /** Things seen on the way (page errors). */
  notes?: string[];
  /** Date.now() when a WHEP viewer's POST was answered (201). */
  answeredAt?: number;
}

/** Latency figures skip the start: from this long after the first picture (a probe's backlog, a player's start-up). */
export const STEADY_AFTER_MS = 2000;

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Keeps codes that make sense as a latency; counts the others. */
export function plausible(samples: ClockSample[]): { kept: ClockSample[]; dropped: number } {
  const kept = samples.filter((s) => s.shownAtMs - s.captureMs > -50 && s.shownAtMs - s.captureMs < 60_000);
  return { kept, dropped: samples.length - kept.length };
}

/**
 * When a plain player would show each picture that its decoder gave out at `shownAtMs`: it
 * shows the first at once and the others at their presentation times' distance from it;
 * a picture that comes later than its turn is shown when it comes, and the ones after it
 * keep that delay (the player stalls and goes on, it never skips ahead). This is how a
 * player that starts three HLS segments back stays three segments back, which the time
 * frames leave ffmpeg's decoder (it reads as fast as it can) does not show. Samples
 * without ptsMs are returned unchanged.
 */
export function presentAtPace(samples: ClockSample[]): ClockSample[] {
  let offset: number | undefined; // wall clock - pts
  let lastPts = -Infinity;
  return samples.map((s) => {
    if (s.ptsMs === undefined) return s;
    // A jump back or a long gap in the timestamps (a new stream): start over from this picture.
    if (offset === undefined || s.ptsMs < lastPts || s.ptsMs > lastPts + 10_000) offset = s.shownAtMs - s.ptsMs;
    lastPts = s.ptsMs;
    const due = s.ptsMs + offset;
    if (s.shownAtMs > due) offset = s.shownAtMs - s.ptsMs; // late: stall, then keep the new delay
    return { ...s, shownAtMs: Math.max(due, s.shownAtMs) };
  });
}

export interface LatencyFigures {
  samples: number;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  maxMs: number;
}

/** Median, p90, min, max latency of the samples shown from `fromMs` on. */
export function latency(samples: ClockSample[], fromMs = -Infinity): LatencyFigures {
  const d = samples.filter((s) => s.shownAtMs >= fromMs).map((s) => s.shownAtMs - s.captureMs);
  return { samples: d.length, medianMs: percentile(d, 50), p90Ms: percentile(d, 90), minMs: d.length ? Math.min(...d) : NaN, maxMs: d.length ? Math.max(...d) : NaN };
}

export interface ViewerFigures {
  viewer: string;
  pictures: number;
  decoded: number;
  /** Codes read that gave an impossible latency (< -50 ms or > 60 s): counted, not used. */
  implausible: number;
  /** Request or page open -> first picture out of the decoder / presented, ms. */
  firstPictureMs?: number;
  /** WHEP: the 201 -> first picture presented, ms. */
  firstPictureAfterAnswerMs?: number;
  /** The first decoded picture's latency (where playback started). */
  firstLatencyMs?: number;
  /** As the viewer shows them (Chromium: presented; ffmpeg: paced as a plain player would, presentAtPace()). */
  shown: LatencyFigures;
  /** ffmpeg only: when its decoder gave each picture out (a player that shows every picture at once). */
  decodedAt?: LatencyFigures;
  error?: string;
  notes?: string[];
}

/** The figures of one viewer run; the window starts STEADY_AFTER_MS after the first picture. */
export function figures(run: ViewerRun): ViewerFigures {
  const { kept, dropped } = plausible(run.samples);
  const hasPts = kept.some((s) => s.ptsMs !== undefined);
  const from = (run.firstPictureAt ?? kept[0]?.shownAtMs ?? 0) + STEADY_AFTER_MS;
  const paced = hasPts ? presentAtPace(kept) : kept;
  return {
    viewer: run.viewer,
    pictures: run.pictures,
    decoded: kept.length,
    implausible: dropped,
    firstPictureMs: run.firstPictureAt === undefined ? undefined : run.firstPictureAt - run.startedAt,
    ...(run.answeredAt !== undefined && run.firstPictureAt !== undefined ? { firstPictureAfterAnswerMs: run.firstPictureAt - run.answeredAt } : {}),
    firstLatencyMs: kept.length ? kept[0].shownAtMs - kept[0].captureMs : undefined,
    shown: latency(paced, from),
    decodedAt: hasPts ? latency(kept, from) : undefined,
    error: run.error,
    notes: run.notes,
  };
}
