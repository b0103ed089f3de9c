import { describe, expect, it } from 'vitest';
import { bindingRequest, MAGIC_COOKIE, parseBindingResponse } from '../../src/nat/stun.js';

function response(transactionId: Buffer, attrs: [number, Buffer][]): Buffer {
  const body = Buffer.concat(attrs.map(([type, value]) => {
    const h = Buffer.alloc(4);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(value.length, 2);
    return Buffer.concat([h, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
  }));
  const header = Buffer.alloc(20);
  header.writeUInt16BE(0x0101, 0);
  header.writeUInt16BE(body.length, 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  return Buffer.concat([header, body]);
}

function address(ip: string, port: number, xor: boolean): Buffer {
  const b = Buffer.alloc(8);
  b[1] = 1;
  b.writeUInt16BE(xor ? port ^ (MAGIC_COOKIE >>> 16) : port, 2);
  const parts = ip.split('.').map(Number);
  const cookie = Buffer.alloc(4);
  cookie.writeUInt32BE(MAGIC_COOKIE);
  parts.forEach((p, i) => (b[4 + i] = xor ? p ^ cookie[i] : p));
  return b;
}

describe('STUN messages for NAT diagnosis', () => {
  it('writes a Binding request with CHANGE-REQUEST flags', () => {
    const { packet, transactionId } = bindingRequest({ ip: true, port: true });
    expect(packet.readUInt16BE(0)).toBe(0x0001);
    expect(packet.readUInt32BE(4)).toBe(MAGIC_COOKIE);
    expect(packet.subarray(8, 20).equals(transactionId)).toBe(true);
    expect(packet.readUInt16BE(20)).toBe(0x0003);
    expect(packet.readUInt32BE(24)).toBe(0x06);
    expect(bindingRequest().packet.length).toBe(20);
  });

  it('reads XOR-MAPPED-ADDRESS and OTHER-ADDRESS from a response', () => {
    const tid = Buffer.alloc(12, 7);
    const r = parseBindingResponse(response(tid, [[0x0020, address('203.0.113.9', 40000, true)], [0x802c, address('198.51.100.2', 3479, false)]]));
    expect(r?.mapped).toEqual({ address: '203.0.113.9', port: 40000 });
    expect(r?.other).toEqual({ address: '198.51.100.2', port: 3479 });
    expect(r?.transactionId.equals(tid)).toBe(true);
  });

  it('ignores what is not a Binding success', () => {
    expect(parseBindingResponse(Buffer.alloc(10))).toBeUndefined();
    expect(parseBindingResponse(Buffer.alloc(20))).toBeUndefined();
  });
});
