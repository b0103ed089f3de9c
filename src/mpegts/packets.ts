// Just enough MPEG-TS parsing (ISO/IEC 13818-1) to start a new HTTP viewer cleanly: find
// PAT and PMT, the video PID, packets that begin a random access point (keyframe), and the
// presentation time of a PES that begins in a packet.

export const TS_PACKET = 188;
const STREAM_TYPE_H264 = 0x1b;

export interface TsPacketInfo {
  pid: number;
  payloadStart: boolean;
  randomAccess: boolean;
}

export function packetInfo(buf: Buffer, offset = 0): TsPacketInfo | undefined {
  if (buf[offset] !== 0x47) return undefined;
  const pid = ((buf[offset + 1] & 0x1f) << 8) | buf[offset + 2];
  const payloadStart = (buf[offset + 1] & 0x40) !== 0;
  const adaptation = (buf[offset + 3] >> 4) & 0x3;
  const hasAdaptation = adaptation === 2 || adaptation === 3;
  const randomAccess = hasAdaptation && buf[offset + 4] > 0 && (buf[offset + 5] & 0x40) !== 0;
  return { pid, payloadStart, randomAccess };
}

/** Where a packet's payload begins (after the adaptation field), or undefined without payload. */
function payloadOffset(buf: Buffer, offset: number): number | undefined {
  const adaptation = (buf[offset + 3] >> 4) & 0x3;
  if (adaptation === 0 || adaptation === 2) return undefined;
  const p = adaptation === 3 ? offset + 5 + buf[offset + 4] : offset + 4;
  return p < offset + TS_PACKET ? p : undefined;
}

/**
 * The PTS (90 kHz, 33 bits) of the PES that begins in this packet (payload_unit_start_indicator
 * set), or undefined when it carries none.
 */
export function pesPts(buf: Buffer, offset = 0): number | undefined {
  const p = payloadOffset(buf, offset);
  if (p === undefined || p + 14 > offset + TS_PACKET) return undefined;
  if (buf[p] !== 0 || buf[p + 1] !== 0 || buf[p + 2] !== 1) return undefined;
  if ((buf[p + 7] & 0x80) === 0) return undefined;
  const b = p + 9;
  return ((buf[b] >> 1) & 0x07) * 2 ** 30 + buf[b + 1] * 2 ** 22 + (buf[b + 2] >> 1) * 2 ** 15 + buf[b + 3] * 2 ** 7 + (buf[b + 4] >> 1);
}

/** The first bytes of the elementary stream data of the PES that begins in this packet. */
export function pesPayload(buf: Buffer, offset = 0): Buffer | undefined {
  const p = payloadOffset(buf, offset);
  if (p === undefined || p + 9 > offset + TS_PACKET || buf[p] !== 0 || buf[p + 1] !== 0 || buf[p + 2] !== 1) return undefined;
  const start = p + 9 + buf[p + 8];
  return start < offset + TS_PACKET ? buf.subarray(start, offset + TS_PACKET) : undefined;
}

/** 90 kHz ticks from `from` to `to`, across the 33-bit wrap. */
export function ptsDiff(to: number, from: number): number {
  const d = (to - from) % 2 ** 33;
  const m = d < 0 ? d + 2 ** 33 : d;
  return m >= 2 ** 32 ? m - 2 ** 33 : m;
}

function sectionPayload(buf: Buffer, offset: number): Buffer | undefined {
  const adaptation = (buf[offset + 3] >> 4) & 0x3;
  let p = offset + 4;
  if (adaptation === 2) return undefined;
  if (adaptation === 3) p += 1 + buf[p];
  p += 1 + buf[p]; // pointer_field
  return p < offset + TS_PACKET ? buf.subarray(p, offset + TS_PACKET) : undefined;
}

/** PMT PIDs listed in a PAT packet. */
export function patPmtPids(buf: Buffer, offset = 0): number[] {
  const s = sectionPayload(buf, offset);
  if (!s || s[0] !== 0x00) return [];
  const sectionLength = ((s[1] & 0x0f) << 8) | s[2];
  const end = Math.min(3 + sectionLength - 4, s.length);
  const pids: number[] = [];
  for (let i = 8; i + 4 <= end; i += 4) {
    const program = (s[i] << 8) | s[i + 1];
    const pid = ((s[i + 2] & 0x1f) << 8) | s[i + 3];
    if (program !== 0) pids.push(pid);
  }
  return pids;
}

/** Elementary streams in a PMT packet: { pid, streamType }. */
export function pmtStreams(buf: Buffer, offset = 0): { pid: number; streamType: number }[] {
  const s = sectionPayload(buf, offset);
  if (!s || s[0] !== 0x02) return [];
  const sectionLength = ((s[1] & 0x0f) << 8) | s[2];
  const end = Math.min(3 + sectionLength - 4, s.length);
  const programInfoLength = ((s[10] & 0x0f) << 8) | s[11];
  const out: { pid: number; streamType: number }[] = [];
  for (let i = 12 + programInfoLength; i + 5 <= end; ) {
    const streamType = s[i];
    const pid = ((s[i + 1] & 0x1f) << 8) | s[i + 2];
    const esInfoLength = ((s[i + 3] & 0x0f) << 8) | s[i + 4];
    out.push({ pid, streamType });
    i += 5 + esInfoLength;
  }
  return out;
}

export function isH264(streamType: number): boolean {
  return streamType === STREAM_TYPE_H264;
}
