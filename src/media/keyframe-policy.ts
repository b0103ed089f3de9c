// The one place that decides when a publisher is asked for a keyframe (PLI). Everything
// that wants one asks here: an output starting (its feed, or its wait for SPS/PPS), the
// HLS segment cadence, a transcoder with no picture, a new SSRC, an ICE restart. Before
// this, each asked on timers of its own (300 ms, 500 ms, 1 s loops), and a publisher
// whose keyframes come on a fixed GOP of its own and who ignores requests (OBS, ffmpeg,
// hardware encoders, GStreamer with a fixed key-int) was asked 3-4 times a second for as
// long as it published.
//
// Rules:
// - Requests merge: one PLI answers everyone waiting, and a request within MERGE_MS of
//   the last PLI waits for it.
// - While someone waits, the PLI is repeated every RETRY_MS until a keyframe comes (a PLI
//   can be lost). Any keyframe satisfies every request.
// - A request is answered when a keyframe comes within ANSWER_MS of the first PLI since
//   the previous keyframe, and not on the publisher's own schedule (see below).
//   IGNORED_TO_BACK_OFF unanswered requests in a row mark a publisher that ignores them.
// - The publisher's own keyframe interval is learned from the keyframes that were not
//   answers: the median of the last GAPS of their spacings, once most of them agree
//   (within 25 %). A keyframe on that schedule does not count as an answer.
// - A publisher that ignores requests is asked at most once per its interval, and never
//   more than once per BACKOFF_MIN_MS: still asked (it may start to answer, or a PLI was
//   lost), but not several times a second, and only early in its GOP, where an answer
//   can be told from its own next keyframe (a request later in the GOP waits for that
//   keyframe, which satisfies it; it is sent after all if that keyframe is late by a whole
//   interval). One answer brings back the quick retries.

export const MERGE_MS = 150;
export const RETRY_MS = 500;
/**
 * Browsers answer a PLI within 50-300 ms. Less than the HLS cadence's 1 s on purpose: a
 * request at a 1 s segment slot is followed by a 2 s GOP publisher's own keyframe ~1.0 s
 * later, which must not count as an answer.
 */
export const ANSWER_MS = 800;
export const IGNORED_TO_BACK_OFF = 3;
export const BACKOFF_MIN_MS = 2000;
const GAPS = 5;
/** How far spacings may stray from their median and still agree (a keyframe waited for in the reorder buffer arrives up to 400 ms late). */
const AGREE = 0.25;
/** Fewest spacings that must agree before an interval is reported. */
const AGREEING = 3;

export interface KeyframeClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

const systemClock: KeyframeClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

export interface KeyframePolicyInfo {
  /** PLIs sent. */
  requests: number;
  /** The publisher's own keyframe spacing, in seconds, once learned. */
  intervalSeconds?: number;
  /** Whether the publisher answers keyframe requests; undefined until it has been asked. */
  answersRequests?: boolean;
}

export class KeyframePolicy {
  private requests = 0;
  private wanted = false;
  private lastSent = -Infinity;
  /** The first PLI since the last keyframe (its answer is judged from it). */
  private burstStart: number | undefined;
  private burstJudged = false;
  private lastKeyframe: number | undefined;
  private gaps: number[] = [];
  private interval: number | undefined;
  private ignoredInARow = 0;
  private answers: boolean | undefined;
  private timer: unknown;
  private judge: unknown;
  private closed = false;

  constructor(
    /** Sends the PLI (PublisherPeer.requestKeyframe). */
    private readonly sendPli: () => void,
    private readonly clock: KeyframeClock = systemClock,
    /**
     * Whether the publisher's video is arriving: a request made while it is not (its
     * network changed, ICE restarts) cannot be judged, and is not held against it.
     */
    private readonly flowing: () => boolean = () => true,
  ) {}

  /** Someone needs a keyframe: the publisher is asked now or soon, and again until one comes. */
  request(): void {
    if (this.closed) return;
    this.wanted = true;
    if (this.timer === undefined) this.schedule();
  }

  /** A keyframe arrived from the publisher. */
  keyframe(): void {
    const now = this.clock.now();
    const answer = this.burstStart !== undefined && !this.burstJudged && now - this.burstStart <= ANSWER_MS && !this.onSchedule(now);
    if (answer) {
      this.answers = true;
      this.ignoredInARow = 0;
    } else {
      if (this.burstStart !== undefined && !this.burstJudged) this.unanswered();
      if (this.lastKeyframe !== undefined) this.learn(now - this.lastKeyframe);
    }
    this.lastKeyframe = now;
    this.burstStart = undefined;
    this.burstJudged = false;
    this.clock.clearTimeout(this.judge);
    this.judge = undefined;
    this.wanted = false;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A new source (SSRC) or a new ICE session: what was learned of the old one no longer holds. */
  reset(): void {
    this.gaps = [];
    this.interval = undefined;
    this.ignoredInARow = 0;
    this.answers = undefined;
    this.lastKeyframe = undefined;
    this.burstStart = undefined;
    this.burstJudged = false;
  }

  info(): KeyframePolicyInfo {
    return {
      requests: this.requests,
      ...(this.interval !== undefined ? { intervalSeconds: Math.round(this.interval / 10) / 100 } : {}),
      ...(this.answers !== undefined ? { answersRequests: this.answers } : {}),
    };
  }

  close(): void {
    this.closed = true;
    this.clock.clearTimeout(this.timer);
    this.clock.clearTimeout(this.judge);
  }

  private get ignoring(): boolean {
    return this.answers === false;
  }

  /** How far apart PLIs to a publisher that ignores them go. */
  private get backoffMs(): number {
    return Math.max(this.interval ?? 0, BACKOFF_MIN_MS);
  }

  /** The earliest moment the next PLI may go out. */
  private earliest(): number {
    if (!this.ignoring) return this.lastSent + (this.burstStart === undefined ? MERGE_MS : RETRY_MS);
    const at = this.lastSent + this.backoffMs;
    if (this.lastKeyframe === undefined) return at;
    const expected = this.interval ?? BACKOFF_MIN_MS;
    // Past this, its own next keyframe could pass for an answer: wait for it instead.
    const window = this.lastKeyframe + expected - ANSWER_MS;
    return at <= window ? at : Math.max(at, this.lastKeyframe + 2 * expected);
  }

  private schedule(): void {
    this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(0, this.earliest() - this.clock.now()));
  }

  private fire(): void {
    this.timer = undefined;
    if (!this.wanted || this.closed) return;
    const now = this.clock.now();
    if (now < this.earliest()) return this.schedule(); // what was learned meanwhile moved it
    this.lastSent = now;
    this.requests++;
    if (this.burstStart === undefined) {
      this.burstStart = now;
      this.judge = this.clock.setTimeout(() => this.judgeBurst(), ANSWER_MS);
    }
    this.sendPli();
    this.schedule(); // the retry, while still wanted
  }

  /**
   * No keyframe within ANSWER_MS of the burst's first PLI: unanswered. While the burst goes
   * on without a keyframe (a long GOP), each further ANSWER_MS counts as one more.
   */
  private judgeBurst(): void {
    this.judge = undefined;
    if (this.burstStart === undefined) return;
    this.burstJudged = true;
    if (this.flowing()) this.unanswered();
    if (this.wanted) this.judge = this.clock.setTimeout(() => this.judgeBurst(), ANSWER_MS);
    // Known to ignore now: the pending retry waits for the back-off instead.
    if (this.ignoring && this.timer !== undefined) this.schedule();
  }

  private unanswered(): void {
    if (++this.ignoredInARow >= IGNORED_TO_BACK_OFF) this.answers = false;
  }

  /** Whether a keyframe now is the one the publisher's own interval would bring anyway. */
  private onSchedule(now: number): boolean {
    if (this.interval === undefined || this.lastKeyframe === undefined) return false;
    return Math.abs(now - this.lastKeyframe - this.interval) <= this.interval * AGREE;
  }

  private learn(gap: number): void {
    this.gaps = [...this.gaps, gap].slice(-GAPS);
    const sorted = [...this.gaps].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    const agreeing = this.gaps.filter((g) => Math.abs(g - median) <= median * AGREE).length;
    this.interval = agreeing >= AGREEING ? median : undefined;
  }
}
