// H.264 over RTP (RFC 6184): find SPS/PPS and IDR slices in RTP payloads.
// ffmpeg needs SPS/PPS before it can describe the stream ("Could not find codec
// parameters"), so the gateway caches them from the live stream and writes them into
// the session SDP as sprop-parameter-sets; IDR detection lets a new output start clean.

export const NAL_IDR = 5;
export const NAL_SPS = 7;
export const NAL_PPS = 8;
const NAL_STAP_A = 24;
const NAL_FU_A = 28;

/** One NAL unit seen in a payload. `complete` is false for FU-A fragments. */
export interface NalInfo {
  type: number;
  /** The whole NAL unit when it fits in one packet (single NAL or STAP-A); undefined for fragments. */
  data?: Buffer;
  /** True for the first fragment of an FU-A (or any unfragmented NAL). */
  start: boolean;
}

/** Lists the NAL units an RTP payload carries (single NAL, STAP-A or FU-A). */
export function nalUnits(payload: Buffer): NalInfo[] {
  if (payload.length < 1) return [];
  const type = payload[0] & 0x1f;
  if (type >= 1 && type <= 23) return [{ type, data: payload, start: true }];
  if (type === NAL_STAP_A) {
    const units: NalInfo[] = [];
    let offset = 1;
    while (offset + 2 <= payload.length) {
      const size = payload.readUInt16BE(offset);
      offset += 2;
      if (size === 0 || offset + size > payload.length) break; // truncated aggregate: stop, keep what parsed
      const data = payload.subarray(offset, offset + size);
      units.push({ type: data[0] & 0x1f, data, start: true });
      offset += size;
    }
    return units;
  }
  if (type === NAL_FU_A && payload.length >= 2) {
    const start = (payload[1] & 0x80) !== 0;
    return [{ type: payload[1] & 0x1f, start }];
  }
  return [];
}

/**
 * True when this packet begins a keyframe access unit: it carries an SPS or the first
 * part of an IDR slice. Browsers send SPS, PPS and IDR with one timestamp, SPS first.
 */
export function startsKeyframe(payload: Buffer): boolean {
  return nalUnits(payload).some((n) => n.start && (n.type === NAL_SPS || n.type === NAL_IDR));
}

/** True when the packet carries (the start of) an IDR slice. */
export function containsIdr(payload: Buffer): boolean {
  return nalUnits(payload).some((n) => n.start && n.type === NAL_IDR);
}

/** The latest SPS and PPS seen on a stream. */
export class H264ParameterSets {
  sps?: Buffer;
  pps?: Buffer;

  /**
   * Looks at one RTP payload; returns true when a parameter set changed. Only parameter
   * sets that can be real are kept: forbidden bit clear, nal_ref_idc set (the standard
   * requires it for SPS and PPS), and for an SPS a readable, plausible picture size. A
   * random payload was once cached as an SPS and the API showed 2066x-16.
   */
  update(payload: Buffer): boolean {
    let changed = false;
    for (const nal of nalUnits(payload)) {
      if (!nal.data || nal.data.length < 2 || (nal.data[0] & 0x80) !== 0 || (nal.data[0] & 0x60) === 0) continue;
      if (nal.type === NAL_SPS && !(this.sps && this.sps.equals(nal.data)) && spsDimensions(nal.data)) {
        this.sps = Buffer.from(nal.data);
        changed = true;
      } else if (nal.type === NAL_PPS && !(this.pps && this.pps.equals(nal.data))) {
        this.pps = Buffer.from(nal.data);
        changed = true;
      }
    }
    return changed;
  }

  get complete(): boolean {
    return this.sps !== undefined && this.pps !== undefined;
  }

  /** `sprop-parameter-sets` value (RFC 6184 §8.1), or undefined until both are known. */
  get spropParameterSets(): string | undefined {
    if (!this.sps || !this.pps) return undefined;
    return `${this.sps.toString('base64')},${this.pps.toString('base64')}`;
  }

  /** profile_idc, constraint flags and level_idc from the SPS, as six hex digits. */
  get profileLevelId(): string | undefined {
    if (!this.sps || this.sps.length < 4) return undefined;
    return this.sps.subarray(1, 4).toString('hex');
  }
}

/** Width and height coded in an SPS, for stats and checks. Undefined when it cannot be read. */
export function spsDimensions(sps: Buffer): { width: number; height: number } | undefined {
  try {
    return readSpsDimensions(removeEmulationPrevention(sps.subarray(1)));
  } catch {
    return undefined;
  }
}

function removeEmulationPrevention(data: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    if (i >= 2 && data[i] === 3 && data[i - 1] === 0 && data[i - 2] === 0) continue;
    out.push(data[i]);
  }
  return Buffer.from(out);
}

class BitReader {
  private bit = 0;
  constructor(private readonly data: Buffer) {}
  u(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.data[this.bit >> 3];
      if (byte === undefined) throw new Error('SPS truncated');
      v = (v << 1) | ((byte >> (7 - (this.bit & 7))) & 1);
      this.bit++;
    }
    return v >>> 0;
  }
  ue(): number {
    let zeros = 0;
    while (this.u(1) === 0) {
      if (++zeros > 31) throw new Error('bad exp-golomb');
    }
    return (2 ** zeros - 1) + (zeros ? this.u(zeros) : 0);
  }
  se(): number {
    const k = this.ue();
    return k % 2 ? (k + 1) / 2 : -(k / 2);
  }
}

/** profile_idc values of H.264 (Annex A and the SVC/MVC profiles). */
const PROFILES = new Set([66, 77, 88, 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);
/** The largest picture side accepted from an SPS (8K). */
const MAX_SIDE = 8192;

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`SPS: ${what}`);
}

function readSpsDimensions(rbsp: Buffer): { width: number; height: number } {
  const r = new BitReader(rbsp);
  const profileIdc = r.u(8);
  check(PROFILES.has(profileIdc), 'unknown profile');
  r.u(16); // constraint flags + level_idc
  check(r.ue() <= 31, 'seq_parameter_set_id');
  let chromaFormatIdc = 1;
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormatIdc = r.ue();
    check(chromaFormatIdc <= 3, 'chroma_format_idc');
    if (chromaFormatIdc === 3) r.u(1);
    r.ue(); // bit_depth_luma
    r.ue(); // bit_depth_chroma
    r.u(1);
    if (r.u(1)) {
      for (let i = 0; i < (chromaFormatIdc !== 3 ? 8 : 12); i++) {
        if (r.u(1)) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  check(r.ue() <= 12, 'log2_max_frame_num');
  const pocType = r.ue();
  check(pocType <= 2, 'pic_order_cnt_type');
  if (pocType === 0) check(r.ue() <= 12, 'log2_max_pic_order_cnt_lsb');
  else if (pocType === 1) {
    r.u(1);
    r.se();
    r.se();
    const n = r.ue();
    check(n <= 255, 'num_ref_frames_in_pic_order_cnt_cycle');
    for (let i = 0; i < n; i++) r.se();
  }
  check(r.ue() <= 16, 'max_num_ref_frames');
  r.u(1);
  const widthMbs = r.ue() + 1;
  const heightMapUnits = r.ue() + 1;
  const frameMbsOnly = r.u(1);
  if (!frameMbsOnly) r.u(1);
  r.u(1);
  let crop = { l: 0, r: 0, t: 0, b: 0 };
  if (r.u(1)) crop = { l: r.ue(), r: r.ue(), t: r.ue(), b: r.ue() };
  const subW = chromaFormatIdc === 1 || chromaFormatIdc === 2 ? 2 : 1;
  const subH = (chromaFormatIdc === 1 ? 2 : 1) * (2 - frameMbsOnly);
  const width = widthMbs * 16 - subW * (crop.l + crop.r);
  const height = (2 - frameMbsOnly) * heightMapUnits * 16 - subH * (crop.t + crop.b);
  check(width >= 16 && width <= MAX_SIDE && height >= 16 && height <= MAX_SIDE, 'picture size');
  return { width, height };
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}
