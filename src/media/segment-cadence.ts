// The HLS keyframe cadence: segments are cut at keyframes, so an output that asks for
// segments of `interval` asks the publisher (through the session's keyframe policy,
// keyframe-policy.ts, which merges, repeats and backs off) for one keyframe per slot of a
// grid that starts at the first keyframe that went out: at first + n * interval. That is
// where ffmpeg's HLS muxer cuts (at the first keyframe at or after n * hls_time), so the
// first segment closes one interval after the first keyframe, and every segment lasts
// exactly one interval. Keyframes the publisher sends by itself (a resolution change, its
// own GOP) do not move the grid: one that came early would not make ffmpeg cut.

export class SegmentCadence {
  private grid: { start: number; next: number; asked: boolean } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly requestKeyframe: () => void,
  ) {}

  /** A keyframe went out at `at` (performance.now()). */
  keyframeSent(at: number): void {
    if (this.stopped) return;
    const interval = this.intervalMs;
    if (!this.grid) this.grid = { start: at, next: 1, asked: false };
    else if (this.grid.asked) {
      // The answer to our request: on to the next slot (skipping any this one came too late for).
      const g = this.grid;
      g.next = Math.max(g.next + 1, Math.floor((at - g.start) / interval) + 1);
      g.asked = false;
    } else return; // not asked for: the grid stays
    clearTimeout(this.timer);
    const grid = this.grid;
    this.timer = setTimeout(() => {
      if (this.stopped) return;
      grid.asked = true;
      this.requestKeyframe(); // the policy repeats it until a keyframe comes
    }, Math.max(0, grid.start + grid.next * interval - performance.now()));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
