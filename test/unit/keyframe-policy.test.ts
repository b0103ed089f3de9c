import { describe, expect, it } from 'vitest';
import { ANSWER_MS, BACKOFF_MIN_MS, KeyframePolicy, MERGE_MS, RETRY_MS, type KeyframeClock } from '../../src/media/keyframe-policy.js';

// The keyframe-request policy on a fake clock: merging, retries, learning a publisher's
// own keyframe interval, and backing off from one that ignores requests.

class FakeClock implements KeyframeClock {
  t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.next++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (id: unknown) => void this.timers.delete(id as number);
  /** Runs time forward to `to`, firing timers in order. */
  advance(to: number): void {
    for (;;) {
      const due = [...this.timers.entries()].filter(([, x]) => x.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = to;
  }
}

function setup() {
  const clock = new FakeClock();
  const sent: number[] = [];
  const policy = new KeyframePolicy(() => sent.push(clock.t), clock);
  return { clock, sent, policy };
}

/**
 * A publisher with its own GOP that ignores requests, under the gateway's HLS cadence (a
 * request 1 s after each keyframe, as Feed's grid does) and an output asking at start.
 */
function fixedGop(gopMs: number, seconds: number) {
  const s = setup();
  s.policy.request(); // an output starts
  for (let t = 0; t <= seconds * 1000; t += 10) {
    s.clock.advance(t);
    if (t > 0 && t % gopMs === 0) s.policy.keyframe();
    if (t % gopMs === 1000) s.policy.request(); // the segment slot
  }
  return s;
}

describe('keyframe policy', () => {
  it('sends one PLI for requests that come together, and retries until a keyframe comes', () => {
    const { clock, sent, policy } = setup();
    policy.request();
    policy.request();
    clock.advance(10);
    policy.request();
    expect(sent).toEqual([0]);
    clock.advance(RETRY_MS * 2 + 1);
    expect(sent).toEqual([0, RETRY_MS, 2 * RETRY_MS]);
    policy.keyframe();
    clock.advance(5000);
    expect(sent).toHaveLength(3);
    expect(policy.info().requests).toBe(3);
  });

  it('a request just after a PLI waits for the merge gap', () => {
    const { clock, sent, policy } = setup();
    policy.request();
    clock.advance(50);
    policy.keyframe();
    policy.request();
    clock.advance(MERGE_MS);
    expect(sent).toEqual([0, MERGE_MS]);
  });

  it('a publisher that answers (a browser) keeps being asked at once; no interval of its own', () => {
    const { clock, sent, policy } = setup();
    for (let i = 0; i < 10; i++) {
      clock.advance(i * 1000);
      policy.request();
      clock.advance(i * 1000 + 120);
      policy.keyframe();
    }
    expect(sent).toHaveLength(10);
    expect(policy.info()).toEqual({ requests: 10, answersRequests: true });
  });

  it('a 2 s GOP that ignores requests: learns 2 s, backs off to one PLI per GOP, early in the GOP', () => {
    const { sent, policy } = fixedGop(2000, 60);
    expect(policy.info()).toMatchObject({ intervalSeconds: 2, answersRequests: false });
    // Until it is known to ignore (three unanswered slots), retries every 500 ms: 7 PLIs.
    expect(sent.filter((t) => t < 6000).length).toBeLessThanOrEqual(8);
    // Then one per GOP, at the segment slot (1 s into the GOP: its own keyframe is no answer).
    const late = sent.filter((t) => t >= 6000);
    expect(late.length).toBeLessThanOrEqual(27);
    for (let i = 1; i < late.length; i++) expect(late[i] - late[i - 1]).toBeGreaterThanOrEqual(2000);
    for (const t of late) expect(t % 2000).toBeLessThanOrEqual(2000 - ANSWER_MS);
  });

  it('a 4 s GOP: one PLI per 4 s once learned', () => {
    const { sent, policy } = fixedGop(4000, 80);
    expect(policy.info()).toMatchObject({ intervalSeconds: 4, answersRequests: false });
    const late = sent.filter((t) => t >= 30_000);
    for (let i = 1; i < late.length; i++) expect(late[i] - late[i - 1]).toBeGreaterThanOrEqual(4000);
  });

  it('a publisher that sends no keyframe at all is asked every 2 s, not every 500 ms', () => {
    const { clock, sent, policy } = setup();
    policy.request();
    clock.advance(3 * ANSWER_MS + 10); // three answer windows without a keyframe
    expect(policy.info().answersRequests).toBe(false);
    const before = sent.length;
    clock.advance(3 * ANSWER_MS + 10 + 10_000);
    expect(sent.length - before).toBeLessThanOrEqual(5);
    for (let i = before + 1; i < sent.length; i++) expect(sent[i] - sent[i - 1]).toBeGreaterThanOrEqual(BACKOFF_MIN_MS);
  });

  it('one answer (off its schedule) brings back the quick retries', () => {
    const { clock, sent, policy } = fixedGop(2000, 20);
    expect(policy.info().answersRequests).toBe(false);
    clock.advance(20_100);
    policy.request();
    const n = sent.length;
    for (let t = 20_100; sent.length === n && t < 30_000; t += 10) clock.advance(t);
    clock.advance(sent.at(-1)! + 100); // 100 ms after the PLI, well off its 2 s schedule
    policy.keyframe();
    expect(policy.info().answersRequests).toBe(true);
  });

  it('forgets what it learned on reset (a new SSRC)', () => {
    const { policy } = fixedGop(2000, 20);
    policy.reset();
    expect(policy.info()).toEqual({ requests: expect.any(Number) });
  });
});
