import type { Segment, Segmenter } from './segmenter.js';

// The LL-HLS media playlist (RFC 8216bis; Apple's "Enabling Low-Latency HLS"). Players
// that ignore the LL tags (EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-SERVER-CONTROL and
// EXT-X-PART-INF are unknown tags to them, which RFC 8216 4.1 says to ignore) read a plain
// live playlist: complete segments with EXTINF and EXT-X-PROGRAM-DATE-TIME, a sliding
// window of at least three target durations, and the open segment's parts after the last
// URI line, where they are only tags.

/**
 * Media names carry the segmenter's epoch (its start time): a stream published again
 * starts again at segment 0, and a cache (browser, CDN) holding the last session's s0
 * for its max-age must not serve it for this one.
 */
export function namesFor(epoch: string) {
  return {
    segment: (msn: number) => `${epoch}-s${msn}.m4s`,
    part: (id: number) => `${epoch}-p${id}.m4s`,
    init: (id: number) => `${epoch}-i${id}.mp4`,
  };
}

/** A media name of namesFor(): the epoch, s (segment) / p (part) / i (init), the number. */
export const MEDIA_NAME = /^([0-9a-z]{1,16})-([spi])(\d{1,12})\.(m4s|mp4)$/;

/** Decimal-floating-point with enough digits that the parts add up to their segment. */
const seconds = (s: number) => s.toFixed(5);

/** PART-HOLD-BACK in part targets: 8216bis 4.4.3.8 says at least 2, and SHOULD be at least 3. */
export const PART_HOLD_BACK_PARTS = 3;

/** `lowLatency` false: a plain live playlist of the same segments (no LL tags, complete segments only). */
export function renderPlaylist(s: Segmenter, lowLatency = true): string {
  const names = namesFor(s.epoch);
  const targets = s.targets;
  if (!targets) throw new Error('no playlist before the first segment is complete');
  const lines = ['#EXTM3U', '#EXT-X-VERSION:6', `#EXT-X-TARGETDURATION:${targets.duration}`];
  if (lowLatency) {
    lines.push(`#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${(PART_HOLD_BACK_PARTS * targets.part).toFixed(3)}`);
    lines.push(`#EXT-X-PART-INF:PART-TARGET=${targets.part.toFixed(3)}`);
  }
  const listed = s.segments; // complete segments, then the open one
  lines.push(`#EXT-X-MEDIA-SEQUENCE:${listed[0]?.msn ?? s.nextMsn}`);
  if (s.discontinuitySequence) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${s.discontinuitySequence}`);
  const last = listed.at(-1);
  const end = last ? last.start + last.duration : 0;
  // 6.2.2: EXT-X-PART tags SHOULD go once they are more than three target durations from the end.
  const withParts = (seg: Segment) => lowLatency && end - seg.start <= 3 * targets.duration + 0.001;
  let initId: number | undefined;
  for (const seg of listed) {
    if (!seg.complete && !lowLatency) break; // a plain playlist lists complete segments only
    // Also on the first listed segment: DISCONTINUITY-SEQUENCE counts only the tags removed.
    if (seg.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    if (seg.initId !== initId) {
      lines.push(`#EXT-X-MAP:URI="${names.init(seg.initId)}"`);
      initId = seg.initId;
    }
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(seg.programDateTime).toISOString()}`);
    if (withParts(seg)) {
      for (const p of seg.parts) lines.push(`#EXT-X-PART:DURATION=${seconds(p.duration)},URI="${names.part(p.id)}"${p.independent ? ',INDEPENDENT=YES' : ''}`);
    }
    if (seg.complete) lines.push(`#EXTINF:${seconds(seg.duration)},`, names.segment(seg.msn));
  }
  if (s.ended) lines.push('#EXT-X-ENDLIST');
  // The next part, whichever segment it turns out to start: part names do not say their segment.
  else if (lowLatency) lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${names.part(s.nextPartId)}"`);
  return `${lines.join('\n')}\n`;
}
