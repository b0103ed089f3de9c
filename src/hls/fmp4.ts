// Fragmented MP4 (ISO BMFF / CMAF) as ffmpeg's mp4 muxer writes it to a pipe for LL-HLS
// (pipelines/shared/hls-ll.json): an init section (ftyp + moov), then fragments (moof +
// mdat, maybe with styp/sidx/prft before the moof). This file splits the byte stream at
// top-level boxes and reads what the segmenter needs: per track its timescale and kind
// (moov), per fragment and track the decode time it starts at (tfdt), its duration (trun
// sample durations, or the tfhd / trex defaults) and whether its first sample is a sync
// sample (trun first-sample flags, trun per-sample flags, tfhd or trex default flags).
//
// Box layouts: ISO/IEC 14496-12 (moov/trak/mdia/mdhd/hdlr, mvex/trex, moof/traf/tfhd/
// tfdt/trun; sample flags in 8.8.3.1). Nothing here copies or rewrites media bytes.

export interface Track {
  id: number;
  /** 'vide', 'soun', ... (hdlr handler_type) */
  handler: string;
  timescale: number;
  /** Sample entry four-cc: avc1, hvc1, mp4a, Opus, ... */
  codec: string;
  /** trex defaults (mvex): used when tfhd/trun give none. */
  defaultDuration: number;
  defaultSize: number;
  defaultFlags: number;
}

export interface Init {
  bytes: Buffer;
  tracks: Track[];
}

export interface TrackRun {
  trackId: number;
  /** tfdt baseMediaDecodeTime, in the track's timescale. */
  decodeTime: number;
  /** Sum of the fragment's sample durations, in the track's timescale. */
  duration: number;
  samples: number;
  /** The first sample is a sync sample (an IDR picture for H.264; every audio sample). */
  firstIsSync: boolean;
}

export interface Fragment {
  /** styp/prft/sidx (if any) + moof + mdat, exactly as ffmpeg wrote them. */
  bytes: Buffer;
  sequence: number;
  runs: TrackRun[];
}

export interface Box {
  type: string;
  /** Offset of the box's first byte (its size field) in the buffer it was read from. */
  start: number;
  /** Offset of its payload (after size, type and any largesize). */
  body: number;
  end: number;
}

/** The boxes in buf[from, to), in order. Throws on a box that does not fit. */
export function boxes(buf: Buffer, from = 0, to = buf.length): Box[] {
  const out: Box[] = [];
  let p = from;
  while (p + 8 <= to) {
    let size = buf.readUInt32BE(p);
    const type = buf.toString('latin1', p + 4, p + 8);
    let body = p + 8;
    if (size === 1) {
      size = Number(buf.readBigUInt64BE(p + 8));
      body = p + 16;
    } else if (size === 0) size = to - p; // to the end
    if (size < body - p || p + size > to) throw new Error(`box ${type} at ${p} overruns (${size} bytes, ${to - p} left)`);
    out.push({ type, start: p, body, end: p + size });
    p += size;
  }
  return out;
}

function child(buf: Buffer, parent: Box, type: string, skip = 0): Box | undefined {
  return boxes(buf, parent.body + skip, parent.end).find((b) => b.type === type);
}

function children(buf: Buffer, parent: Box, type: string): Box[] {
  return boxes(buf, parent.body, parent.end).filter((b) => b.type === type);
}

/** sample_flags (ISO/IEC 14496-12 8.8.3.1): sync unless sample_is_non_sync_sample, or depends_on says it needs others. */
export function isSync(flags: number): boolean {
  const dependsOn = (flags >>> 24) & 0x3;
  return (flags & 0x10000) === 0 && dependsOn !== 1;
}

export function parseInit(bytes: Buffer): Init {
  const top = boxes(bytes);
  const moov = top.find((b) => b.type === 'moov');
  if (!moov) throw new Error('no moov in the init section');
  const tracks: Track[] = [];
  for (const trak of children(bytes, moov, 'trak')) {
    const tkhd = child(bytes, trak, 'tkhd');
    const mdia = child(bytes, trak, 'mdia');
    if (!tkhd || !mdia) continue;
    const id = bytes.readUInt32BE(tkhd.body + (bytes[tkhd.body] === 1 ? 20 : 12));
    const mdhd = child(bytes, mdia, 'mdhd');
    const hdlr = child(bytes, mdia, 'hdlr');
    if (!mdhd || !hdlr) continue;
    const timescale = bytes.readUInt32BE(mdhd.body + (bytes[mdhd.body] === 1 ? 20 : 12));
    const handler = bytes.toString('latin1', hdlr.body + 8, hdlr.body + 12);
    const minf = child(bytes, mdia, 'minf');
    const stbl = minf && child(bytes, minf, 'stbl');
    const stsd = stbl && child(bytes, stbl, 'stsd');
    // stsd: version/flags (4), entry_count (4), then sample entries (boxes)
    const entry = stsd && boxes(bytes, stsd.body + 8, stsd.end)[0];
    tracks.push({ id, handler, timescale, codec: entry?.type ?? '?', defaultDuration: 0, defaultSize: 0, defaultFlags: 0 });
  }
  const mvex = child(bytes, moov, 'mvex');
  for (const trex of mvex ? children(bytes, mvex, 'trex') : []) {
    const b = trex.body; // version/flags, track_ID, default_sample_description_index, duration, size, flags
    const t = tracks.find((x) => x.id === bytes.readUInt32BE(b + 4));
    if (!t) continue;
    t.defaultDuration = bytes.readUInt32BE(b + 12);
    t.defaultSize = bytes.readUInt32BE(b + 16);
    t.defaultFlags = bytes.readUInt32BE(b + 20);
  }
  if (!tracks.length) throw new Error('no track in the init section');
  return { bytes, tracks };
}

/** Reads a moof (given as the box in `buf`) against the init section's tracks. */
export function parseMoof(buf: Buffer, moof: Box, tracks: Track[]): { sequence: number; runs: TrackRun[] } {
  const mfhd = child(buf, moof, 'mfhd');
  const sequence = mfhd ? buf.readUInt32BE(mfhd.body + 4) : 0;
  const runs: TrackRun[] = [];
  for (const traf of children(buf, moof, 'traf')) {
    const tfhd = child(buf, traf, 'tfhd');
    if (!tfhd) continue;
    const tfFlags = buf.readUInt32BE(tfhd.body) & 0xffffff;
    const trackId = buf.readUInt32BE(tfhd.body + 4);
    const track = tracks.find((t) => t.id === trackId);
    let p = tfhd.body + 8;
    if (tfFlags & 0x1) p += 8; // base_data_offset
    if (tfFlags & 0x2) p += 4; // sample_description_index
    let defDuration = track?.defaultDuration ?? 0;
    let defFlags = track?.defaultFlags ?? 0;
    if (tfFlags & 0x8) (defDuration = buf.readUInt32BE(p)), (p += 4);
    if (tfFlags & 0x10) p += 4; // default_sample_size
    if (tfFlags & 0x20) defFlags = buf.readUInt32BE(p);
    const tfdt = child(buf, traf, 'tfdt');
    const decodeTime = !tfdt ? NaN : buf[tfdt.body] === 1 ? Number(buf.readBigUInt64BE(tfdt.body + 4)) : buf.readUInt32BE(tfdt.body + 4);
    let duration = 0;
    let samples = 0;
    let firstIsSync: boolean | undefined;
    for (const trun of children(buf, traf, 'trun')) {
      const trFlags = buf.readUInt32BE(trun.body) & 0xffffff;
      const count = buf.readUInt32BE(trun.body + 4);
      let q = trun.body + 8;
      if (trFlags & 0x1) q += 4; // data_offset
      let firstFlags: number | undefined;
      if (trFlags & 0x4) (firstFlags = buf.readUInt32BE(q)), (q += 4);
      for (let i = 0; i < count; i++) {
        let d = defDuration;
        let f = i === 0 && firstFlags !== undefined ? firstFlags : defFlags;
        if (trFlags & 0x100) (d = buf.readUInt32BE(q)), (q += 4);
        if (trFlags & 0x200) q += 4; // size
        if (trFlags & 0x400) {
          const perSample = buf.readUInt32BE(q);
          q += 4;
          if (!(i === 0 && firstFlags !== undefined)) f = perSample;
        }
        if (trFlags & 0x800) q += 4; // composition time offset
        if (firstIsSync === undefined) firstIsSync = isSync(f);
        duration += d;
      }
      samples += count;
    }
    runs.push({ trackId, decodeTime, duration, samples, firstIsSync: firstIsSync ?? false });
  }
  return { sequence, runs };
}

/** Top-level boxes ffmpeg's mp4 muxer writes to a pipe (anything else means we lost the box boundary). */
const KNOWN_TOP_LEVEL = new Set(['ftyp', 'moov', 'moof', 'mdat', 'styp', 'sidx', 'prft', 'mfra', 'free', 'skip', 'emsg', 'uuid']);
/** No fragment of a live stream comes near this (a 200 ms part at 50 Mbit/s is 1.25 MB). */
const MAX_BOX_BYTES = 64 * 1024 * 1024;

/**
 * Splits a fMP4 byte stream (write chunks as they come) into the init section and the
 * fragments. A fragment is handed over once its mdat is complete: ffmpeg writes moof and
 * mdat together, after the fragment's last sample, so nothing waits longer than ffmpeg.
 * Boxes before a moof (styp, sidx, prft) travel with that fragment.
 */
export class Fmp4Reader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private init: Init | undefined;
  /** Top-level boxes read since the last init/fragment was handed over. */
  private held: Buffer[] = [];
  private moof: Buffer | undefined;

  constructor(
    private readonly onInit: (init: Init) => void,
    private readonly onFragment: (fragment: Fragment) => void,
  ) {}

  /**
   * ffmpeg died (or was restarted): forget a box it left half written. The next ffmpeg
   * starts with ftyp, and its bytes must not be read as the rest of the old box.
   */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.held = [];
    this.moof = undefined;
  }

  /** Bytes skipped because they were not a box (a restarted ffmpeg's output read mid-box). */
  skipped = 0;

  write(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    for (;;) {
      const box = this.nextBox();
      if (!box) return;
      try {
        this.take(box);
      } catch {
        // A box that does not parse (never seen from ffmpeg): that fragment is lost, the
        // stream goes on with the next one.
        this.held = [];
        this.moof = undefined;
      }
    }
  }

  /** Takes one whole top-level box off the pending bytes, or undefined if not all here yet. */
  private nextBox(): Buffer | undefined {
    if (this.pending.length > 1) this.pending = [Buffer.concat(this.pending)];
    let buf = this.pending[0] ?? Buffer.alloc(0);
    for (;;) {
      if (buf.length < 8) break;
      let size = buf.readUInt32BE(0);
      if (size === 1) {
        if (buf.length < 16) break;
        size = Number(buf.readBigUInt64BE(8));
      }
      if (KNOWN_TOP_LEVEL.has(buf.toString('latin1', 4, 8)) && size >= 8 && size <= MAX_BOX_BYTES) {
        if (buf.length < size) break;
        const rest = buf.subarray(size);
        this.pending = rest.length ? [rest] : [];
        this.pendingBytes = rest.length;
        return Buffer.from(buf.subarray(0, size)); // a copy: the segmenter keeps it, the big buffer can go
      }
      // Not a box boundary (ffmpeg died mid-box and a new one started): skip to the next
      // ftyp, where a new ffmpeg's output begins.
      const at = buf.indexOf('ftyp', 5, 'latin1');
      const from = at >= 4 ? at - 4 : Math.max(1, buf.length - 7);
      this.skipped += from;
      buf = buf.subarray(from);
    }
    this.pending = buf.length ? [buf] : [];
    this.pendingBytes = buf.length;
    return undefined;
  }

  private take(box: Buffer): void {
    const type = box.toString('latin1', 4, 8);
    if (type === 'ftyp' && this.init) {
      // ffmpeg started over (a restart feeding the same reader): a new init section.
      this.init = undefined;
      this.held = [];
      this.moof = undefined;
    }
    this.held.push(box);
    if (type === 'moov') {
      this.init = parseInit(Buffer.concat(this.held));
      this.held = [];
      this.onInit(this.init);
    } else if (type === 'moof') {
      this.moof = box;
    } else if (type === 'mdat' && this.moof && this.init) {
      const bytes = Buffer.concat(this.held);
      const moof = this.moof;
      this.held = [];
      this.moof = undefined;
      const { sequence, runs } = parseMoof(moof, boxes(moof)[0], this.init.tracks);
      this.onFragment({ bytes, sequence, runs });
    }
  }
}
