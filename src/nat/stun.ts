import { randomBytes } from 'node:crypto';

// The STUN messages NAT diagnosis needs (RFC 5389 Binding, RFC 5780 CHANGE-REQUEST and
// OTHER-ADDRESS): encode a request, decode the addresses in a response. Pure code.

export const MAGIC_COOKIE = 0x2112a442;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const ATTR = { MAPPED: 0x0001, CHANGE_REQUEST: 0x0003, CHANGED_ADDRESS: 0x0005, XOR_MAPPED: 0x0020, RESPONSE_ORIGIN: 0x802b, OTHER_ADDRESS: 0x802c } as const;

export interface Endpoint {
  address: string;
  port: number;
}

export interface BindingResponse {
  transactionId: Buffer;
  mapped?: Endpoint;
  /** The server's alternate address (RFC 5780), for the mapping and filtering tests. */
  other?: Endpoint;
  responseOrigin?: Endpoint;
}

export function bindingRequest(change: { ip?: boolean; port?: boolean } = {}): { packet: Buffer; transactionId: Buffer } {
  const transactionId = randomBytes(12);
  const attrs: Buffer[] = [];
  if (change.ip || change.port) {
    const a = Buffer.alloc(8);
    a.writeUInt16BE(ATTR.CHANGE_REQUEST, 0);
    a.writeUInt16BE(4, 2);
    a.writeUInt32BE((change.ip ? 0x04 : 0) | (change.port ? 0x02 : 0), 4);
    attrs.push(a);
  }
  const body = Buffer.concat(attrs);
  const header = Buffer.alloc(20);
  header.writeUInt16BE(BINDING_REQUEST, 0);
  header.writeUInt16BE(body.length, 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  return { packet: Buffer.concat([header, body]), transactionId };
}

function readAddress(value: Buffer, xor: boolean, transactionId: Buffer): Endpoint | undefined {
  if (value.length < 8 || value[1] !== 0x01) return undefined; // IPv4 only
  let port = value.readUInt16BE(2);
  const ip = Buffer.from(value.subarray(4, 8));
  if (xor) {
    port ^= MAGIC_COOKIE >>> 16;
    const cookie = Buffer.alloc(4);
    cookie.writeUInt32BE(MAGIC_COOKIE);
    for (let i = 0; i < 4; i++) ip[i] ^= cookie[i];
  }
  void transactionId;
  return { address: [...ip].join('.'), port };
}

/** Decodes a Binding success response; undefined for anything else. */
export function parseBindingResponse(buf: Buffer): BindingResponse | undefined {
  if (buf.length < 20 || buf.readUInt16BE(0) !== BINDING_SUCCESS || buf.readUInt32BE(4) !== MAGIC_COOKIE) return undefined;
  const transactionId = buf.subarray(8, 20);
  const res: BindingResponse = { transactionId };
  const end = Math.min(buf.length, 20 + buf.readUInt16BE(2));
  for (let off = 20; off + 4 <= end; ) {
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    const value = buf.subarray(off + 4, off + 4 + len);
    if (type === ATTR.XOR_MAPPED) res.mapped = readAddress(value, true, transactionId);
    else if (type === ATTR.MAPPED && !res.mapped) res.mapped = readAddress(value, false, transactionId);
    else if (type === ATTR.OTHER_ADDRESS || (type === ATTR.CHANGED_ADDRESS && !res.other)) res.other = readAddress(value, false, transactionId);
    else if (type === ATTR.RESPONSE_ORIGIN) res.responseOrigin = readAddress(value, false, transactionId);
    off += 4 + len + ((4 - (len % 4)) % 4);
  }
  return res;
}
