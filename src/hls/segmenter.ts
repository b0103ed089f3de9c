import { EventEmitter } from 'node:events';
import type { Fragment, Init } from './fmp4.js';

// Turns ffmpeg's fMP4 fragments into LL-HLS parts and segments (RFC 8216bis).
//
// One ffmpeg fragment (moof + mdat; ffmpeg closes one at the first frame at least
// -frag_duration in, and at every keyframe) is one part, ready the moment it arrives:
// ffmpeg writes a fragment only once it is complete, and 8216bis (6.2.2) forbids sending
// a part's bytes before all of them can go at full speed, so grouping smaller fragments
// would only delay parts. A segment is a run of parts that starts at a keyframe: a new one
// begins at the first part that starts with a sync sample once the segment has reached
// its target length (the gateway asks the publisher for a keyframe at that cadence). A
// publisher that sends keyframes further apart than the target duration allows still gets
// a cut, at a part that is not independent, before a segment's rounded length would pass
// #EXT-X-TARGETDURATION.
//
// Times come from the fragments (tfdt + trun durations of the reference track: the video
// when there is one), never from the clock, so EXTINF and DURATION are what the files
// hold. The clock only anchors EXT-X-PROGRAM-DATE-TIME (see observe()).
//
// Two values are fixed once the first segment is complete (the first playlist is held
// until then; they must not change afterwards):
// - EXT-X-TARGETDURATION: the segment target rounded up, or the first segment's length
//   rounded when that is longer (a publisher that ignores keyframe requests and keeps a
//   GOP of its own: 2 s GOP, 2 s segments, #EXT-X-TARGETDURATION:2).
// - PART-TARGET: the fragment length asked of ffmpeg plus one frame interval (the median
//   sample duration of the first segment's reference track): ffmpeg closes a fragment at
//   the first frame at or after -frag_duration, so with regular frames no part is longer
//   than that (0.229 s at 30 fps for 0.195 s fragments; the parts last 0.200 s, 87 % of
//   it, above the 85 % 8216bis asks of all but a segment's last part).

/** How early (s) a keyframe may come and still start a new segment (the keyframe grid is measured on arrival). */
const KEYFRAME_EARLY_S = 0.1;
/** Fragments over which the PDT anchor takes its minimum (about 20 s of 200 ms parts). */
const ANCHOR_WINDOW = 100;
/** A first segment is cut here at the latest, whatever the publisher's GOP (the target duration is then this). */
const FIRST_SEGMENT_MAX_S = 10;

export interface Part {
  /** Global, never reused: the part's URI is made from it, known before the part exists (preload hint). */
  id: number;
  msn: number;
  /** Index within its segment. */
  index: number;
  bytes: Buffer;
  /** Seconds (reference track). */
  duration: number;
  /** Starts with a sync sample (a keyframe): decodable without the parts before it. */
  independent: boolean;
  /** Media time (s) of its first sample, reference track. */
  start: number;
}

export interface Segment {
  msn: number;
  parts: Part[];
  /** Seconds; final once complete. */
  duration: number;
  start: number;
  /** Wall clock (ms since the epoch) of its first sample. */
  programDateTime: number;
  /** Starts with a keyframe. */
  independent: boolean;
  complete: boolean;
  /** The init section (EXT-X-MAP) it is decoded with. */
  initId: number;
  /** Follows a restart of ffmpeg (a new init section, a timeline starting over). */
  discontinuity: boolean;
  /** Bytes of all its parts. */
  bytes: number;
}

export interface SegmenterOptions {
  /** ffmpeg's -frag_duration, seconds: a part closes at the first frame at least this far in. */
  fragmentSeconds: number;
  /** Wanted segment length, seconds (the gateway asks for a keyframe this often). */
  segmentTarget: number;
  /** Complete segments listed (at least enough for three target durations is kept). */
  listSize: number;
  now?: () => number;
  /** Prefix of the media names; default: the start time in base 36. */
  epoch?: string;
  /** The first segment's media sequence number (default 0). */
  firstMsn?: number;
}

export interface SegmenterEvents {
  /** A part became available (and with it, maybe, the end of a segment). */
  part: [Part];
  segment: [Segment];
  ended: [];
}

export class Segmenter extends EventEmitter<SegmenterEvents> {
  readonly segmentTarget: number;
  readonly fragmentSeconds: number;
  private readonly wantedListSize: number;
  private readonly now: () => number;
  /** Prefix of every media name (see playlist.ts namesFor). */
  readonly epoch: string;

  /** EXT-X-TARGETDURATION and PART-TARGET: known once the first segment is complete. */
  targets: { duration: number; part: number } | undefined;
  private inits: { id: number; init: Init }[] = [];
  private nextInitId = 0;
  private refTrackId = 0;
  private refTimescale = 1;
  /** Segments in the playlist window (the last one may be open). */
  readonly segments: Segment[] = [];
  /** Segments that left the window, still fetchable for a while (players that were behind). */
  private readonly retired: Segment[] = [];
  private readonly partsById = new Map<number, Part>();
  nextPartId = 0;
  nextMsn = 0;
  discontinuitySequence = 0;
  ended = false;
  private pendingDiscontinuity = false;
  /** Wall clock (ms) - media time (ms): see observe(). */
  private anchor: number | undefined;
  private offsets: number[] = [];
  /** Sample durations (s) of the reference track in the first segment, for PART-TARGET. */
  private sampleDurations: number[] = [];
  /** Parts longer than PART-TARGET, forced (non-keyframe) cuts, fragments dropped before the first keyframe. */
  readonly stats = { parts: 0, overlong: 0, longestPart: 0, forcedCuts: 0, droppedBeforeKeyframe: 0 };

  constructor(options: SegmenterOptions) {
    super();
    this.fragmentSeconds = options.fragmentSeconds;
    this.segmentTarget = options.segmentTarget;
    this.wantedListSize = options.listSize;
    this.now = options.now ?? Date.now;
    this.epoch = options.epoch ?? this.now().toString(36);
    this.nextMsn = options.firstMsn ?? 0;
  }

  /** The latest init section, if ffmpeg has written one. */
  get init(): { id: number; init: Init } | undefined {
    return this.inits.at(-1);
  }

  initById(id: number): Init | undefined {
    return this.inits.find((i) => i.id === id)?.init;
  }

  /** The open segment (the live edge), if any. */
  get open(): Segment | undefined {
    const last = this.segments.at(-1);
    return last && !last.complete ? last : undefined;
  }

  get completeSegments(): Segment[] {
    return this.segments.filter((s) => s.complete);
  }

  /** The last complete segment's sequence number, or -1. */
  get lastCompleteMsn(): number {
    for (let i = this.segments.length - 1; i >= 0; i--) if (this.segments[i].complete) return this.segments[i].msn;
    return -1;
  }

  /** Complete segments kept in the playlist: the list size asked for, and never fewer than three target durations (6.2.2). */
  get listSize(): number {
    const td = this.targets?.duration ?? Math.ceil(this.segmentTarget);
    return Math.max(this.wantedListSize, Math.ceil((3 * td) / this.segmentTarget) + 1);
  }

  part(id: number): Part | undefined {
    return this.partsById.get(id);
  }

  segment(msn: number): Segment | undefined {
    return this.segments.find((s) => s.msn === msn) ?? this.retired.find((s) => s.msn === msn);
  }

  /** ffmpeg wrote an init section: the first, or a new one after a restart. */
  onInit(init: Init): void {
    const ref = init.tracks.find((t) => t.handler === 'vide') ?? init.tracks[0];
    this.refTrackId = ref.id;
    this.refTimescale = ref.timescale;
    this.inits.push({ id: this.nextInitId++, init });
    if (this.inits.length > 4) this.inits.shift();
    if (this.inits.length > 1) {
      // ffmpeg was restarted: what it wrote last ends here, and a new timeline starts.
      this.closeOpen();
      this.pendingDiscontinuity = this.segments.length > 0;
      this.anchor = undefined;
      this.offsets = [];
    }
  }

  onFragment(fragment: Fragment): void {
    const init = this.init;
    if (!init || this.ended) return;
    const ref = fragment.runs.find((r) => r.trackId === this.refTrackId);
    // A fragment without the reference track (audio only while the video pauses) is still
    // media; its length comes from the track it has.
    const run = ref ?? fragment.runs[0];
    if (!run) return;
    const timescale = ref ? this.refTimescale : (init.init.tracks.find((t) => t.id === run.trackId)?.timescale ?? 1);
    const start = run.decodeTime / timescale;
    const duration = run.duration / timescale;
    const refIsAudio = init.init.tracks.find((t) => t.id === this.refTrackId)?.handler === 'soun';
    const sync = ref ? ref.firstIsSync : refIsAudio;
    this.observe(start + duration);
    const open = this.open;
    if (!open && !this.segments.some((s) => s.initId === init.id) && !sync) {
      this.stats.droppedBeforeKeyframe++;
      return; // nothing decodable before the first keyframe of this init section
    }
    let segment = open;
    const elapsed = open ? start - open.start : 0;
    const wantCut = open !== undefined && sync && elapsed >= this.segmentTarget - KEYFRAME_EARLY_S;
    // Cut anyway (at a part that is not independent) before the segment's rounded length
    // would pass the target duration (6.2.1: EXTINF rounded <= EXT-X-TARGETDURATION).
    const limit = this.targets ? this.targets.duration + 0.5 - 0.001 : FIRST_SEGMENT_MAX_S;
    const mustCut = open !== undefined && open.parts.length > 0 && elapsed + duration >= limit;
    if (!open || wantCut || mustCut) {
      if (open) this.complete(open);
      if (mustCut && !wantCut) this.stats.forcedCuts++;
      segment = this.startSegment(start, sync);
    }
    const s = segment!;
    const part: Part = { id: this.nextPartId++, msn: s.msn, index: s.parts.length, bytes: fragment.bytes, duration, independent: sync, start };
    s.parts.push(part);
    s.duration = start + duration - s.start;
    s.bytes += part.bytes.length;
    this.partsById.set(part.id, part);
    if (!this.targets && ref && ref.samples > 0) this.sampleDurations.push(duration / ref.samples);
    this.stats.parts++;
    this.stats.longestPart = Math.max(this.stats.longestPart, duration);
    if (this.targets && duration > this.targets.part + 0.0005) this.stats.overlong++;
    this.emit('part', part);
  }

  /** The stream ended: the open segment is complete, the playlist gets EXT-X-ENDLIST. */
  end(): void {
    if (this.ended) return;
    this.closeOpen();
    this.ended = true;
    this.emit('ended');
  }

  private startSegment(start: number, independent: boolean): Segment {
    const segment: Segment = {
      msn: this.nextMsn++,
      parts: [],
      duration: 0,
      start,
      programDateTime: this.wallOf(start),
      independent,
      complete: false,
      initId: this.init!.id,
      discontinuity: this.pendingDiscontinuity,
      bytes: 0,
    };
    this.pendingDiscontinuity = false;
    this.segments.push(segment);
    return segment;
  }

  /**
   * Media time -> wall clock, for EXT-X-PROGRAM-DATE-TIME. A fragment reaches us after the
   * capture of its last sample plus the pipeline's delay, never before: the offset
   * (arrival - media end) is smallest for the fragments that waited least, so the anchor
   * is the smallest offset seen in the last ANCHOR_WINDOW fragments. The first fragments
   * come late (ffmpeg probes its input, then writes what it held all at once): anchoring
   * on the first one alone put the PDT 0.4-0.6 s after the capture, and players reported
   * that much less latency than there was. Only new segments get the new anchor.
   */
  private observe(end: number): void {
    this.offsets.push(this.now() - end * 1000);
    if (this.offsets.length > ANCHOR_WINDOW) this.offsets.shift();
    this.anchor = Math.min(...this.offsets);
  }

  private wallOf(media: number): number {
    return (this.anchor ?? this.now() - media * 1000) + media * 1000;
  }

  private closeOpen(): void {
    const open = this.open;
    if (open) this.complete(open);
  }

  private complete(segment: Segment): void {
    segment.complete = true;
    this.targets ??= this.fixTargets(segment);
    // Slide the window: the oldest complete segments past listSize go (fetchable a while longer).
    const complete = this.completeSegments;
    while (complete.length > this.listSize) {
      const gone = complete.shift()!;
      this.segments.splice(this.segments.indexOf(gone), 1);
      // 6.2.2: removing a segment that carries EXT-X-DISCONTINUITY bumps the sequence.
      if (gone.discontinuity) this.discontinuitySequence++;
      this.retired.push(gone);
    }
    while (this.retired.length > this.listSize) {
      const old = this.retired.shift()!;
      for (const p of old.parts) this.partsById.delete(p.id);
    }
    this.emit('segment', segment);
  }

  private fixTargets(first: Segment): { duration: number; part: number } {
    const sorted = [...this.sampleDurations].sort((a, b) => a - b);
    const frame = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
    const part = Math.ceil((this.fragmentSeconds + frame) * 1000) / 1000;
    const duration = Math.max(Math.ceil(this.segmentTarget), Math.round(first.duration));
    this.sampleDurations = [];
    return { duration, part };
  }
}
