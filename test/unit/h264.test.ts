import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { H264ParameterSets, containsIdr, nalUnits, spsDimensions, startsKeyframe } from '../../src/rtp/h264.js';

// Parameter sets come from a real encoder: ffmpeg makes a few frames of H.264 at test
// time, the test splits them into NAL units and packs them the three ways RTP does.

function annexBNals(buf: Buffer): Buffer[] {
  const nals: Buffer[] = [];
  let start = -1;
  for (let i = 0; i + 3 <= buf.length; i++) {
    const sc3 = buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1;
    if (!sc3) continue;
    if (start >= 0) nals.push(buf.subarray(start, i > 0 && buf[i - 1] === 0 ? i - 1 : i));
    start = i + 3;
    i += 2;
  }
  if (start >= 0) nals.push(buf.subarray(start));
  return nals;
}

function stapA(nals: Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from([24 | (nals[0][0] & 0x60)])];
  for (const n of nals) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(n.length);
    parts.push(len, n);
  }
  return Buffer.concat(parts);
}

function fuA(nal: Buffer, size: number): Buffer[] {
  const header = nal[0];
  const body = nal.subarray(1);
  const out: Buffer[] = [];
  for (let off = 0; off < body.length; off += size) {
    const start = off === 0;
    const end = off + size >= body.length;
    out.push(Buffer.concat([Buffer.from([(header & 0xe0) | 28, (start ? 0x80 : 0) | (end ? 0x40 : 0) | (header & 0x1f)]), body.subarray(off, off + size)]));
  }
  return out;
}

describe('H.264 parameter sets', () => {
  let sps: Buffer;
  let pps: Buffer;
  let idr: Buffer;
  let slice: Buffer;

  beforeAll(() => {
    const es = execFileSync('ffmpeg', [
      '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-frames:v', '3',
      '-c:v', 'libx264', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p', '-bf', '0', '-f', 'h264', '-',
    ]);
    const nals = annexBNals(es);
    sps = nals.find((n) => (n[0] & 0x1f) === 7)!;
    pps = nals.find((n) => (n[0] & 0x1f) === 8)!;
    idr = nals.find((n) => (n[0] & 0x1f) === 5)!;
    slice = nals.find((n) => (n[0] & 0x1f) === 1)!;
    expect(sps && pps && idr && slice).toBeTruthy();
  });

  it('reads SPS and PPS sent as single NAL units', () => {
    const ps = new H264ParameterSets();
    expect(ps.update(sps)).toBe(true);
    expect(ps.complete).toBe(false);
    expect(ps.update(pps)).toBe(true);
    expect(ps.spropParameterSets).toBe(`${sps.toString('base64')},${pps.toString('base64')}`);
    expect(ps.profileLevelId).toBe(sps.subarray(1, 4).toString('hex'));
    expect(ps.profileLevelId!.startsWith('42')).toBe(true);
    expect(ps.update(sps)).toBe(false); // unchanged
  });

  it('reads SPS and PPS from a STAP-A aggregate, as browsers send them', () => {
    const ps = new H264ParameterSets();
    const pkt = stapA([sps, pps]);
    expect(nalUnits(pkt).map((n) => n.type)).toEqual([7, 8]);
    ps.update(pkt);
    expect(ps.sps?.equals(sps)).toBe(true);
    expect(ps.pps?.equals(pps)).toBe(true);
    expect(startsKeyframe(pkt)).toBe(true);
  });

  it('finds the IDR in the first FU-A fragment only', () => {
    const frags = fuA(idr, 1000);
    expect(frags.length).toBeGreaterThan(1);
    expect(containsIdr(frags[0])).toBe(true);
    expect(startsKeyframe(frags[0])).toBe(true);
    expect(frags.slice(1).some((f) => containsIdr(f))).toBe(false);
    expect(new H264ParameterSets().update(frags[0])).toBe(false); // fragments carry no parameter sets
  });

  it('does not take a P slice for a keyframe', () => {
    expect(startsKeyframe(slice)).toBe(false);
    expect(fuA(slice, 500).some(startsKeyframe)).toBe(false);
  });

  it('reads the coded size from the SPS', () => {
    expect(spsDimensions(sps)).toEqual({ width: 1280, height: 720 });
  });

  it('does not cache a random payload as an SPS (it once showed as 2066x-16)', () => {
    const ps = new H264ParameterSets();
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let i = 0; i < 2000; i++) {
      // A payload that claims to be an SPS (type 7, nal_ref_idc 3) with random bytes after.
      const payload = Buffer.from([0x67, ...Array.from({ length: 4 + (i % 40) }, random)]);
      ps.update(payload);
      const dims = ps.sps && spsDimensions(ps.sps);
      if (ps.sps) expect(dims, payload.toString('hex')).toBeDefined();
      if (dims) {
        expect(dims.width).toBeGreaterThanOrEqual(16);
        expect(dims.height).toBeGreaterThanOrEqual(16);
      }
    }
    // A parameter set without nal_ref_idc (0x07) is not one the standard allows.
    const zeroRef = Buffer.from(sps);
    zeroRef[0] &= 0x9f;
    const fresh = new H264ParameterSets();
    fresh.update(zeroRef);
    expect(fresh.sps).toBeUndefined();
    fresh.update(sps);
    expect(spsDimensions(fresh.sps!)).toEqual({ width: 1280, height: 720 });
  });

  it('survives truncated and empty payloads', () => {
    expect(nalUnits(Buffer.alloc(0))).toEqual([]);
    expect(nalUnits(Buffer.from([24, 0, 50, 7]))).toEqual([]); // STAP-A claiming more than it has
    expect(spsDimensions(Buffer.from([0x67, 0x42]))).toBeUndefined();
  });
});
