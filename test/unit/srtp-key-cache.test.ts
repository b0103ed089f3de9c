import crypto from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { RtpHeader, SrtpSession } from 'werift';
import { installSrtpKeyCache } from '../../src/werift/srtp-key-cache.js';

// The media workers give node:crypto's cipher factories KeyObjects for werift's raw SRTP
// keys (src/werift/srtp-key-cache.ts). werift's SRTP must protect and unprotect the same
// bytes as without it, and the keys must really reach node:crypto as KeyObjects (if
// werift stopped creating its ciphers through those factories, the cache would do nothing).

const keys = { localMasterKey: Buffer.alloc(16, 7), localMasterSalt: Buffer.alloc(14, 9), remoteMasterKey: Buffer.alloc(16, 7), remoteMasterSalt: Buffer.alloc(14, 9) };
const PROFILE_AES128_CM_HMAC_SHA1_80 = 0x0001;
const payload = Buffer.alloc(100, 0x42);

function header(seq: number): RtpHeader {
  const h = new RtpHeader();
  Object.assign(h, { payloadType: 102, sequenceNumber: seq, timestamp: 3000 * seq, ssrc: 0x12345678 });
  return h;
}

describe('SRTP key cache (media workers)', () => {
  it('werift protects the same bytes with the cache, unprotects them, and node:crypto gets KeyObjects', () => {
    const before = [1, 2, 3].map((seq) => new SrtpSession({ keys, profile: PROFILE_AES128_CM_HMAC_SHA1_80 }).encrypt(payload, header(seq)));
    installSrtpKeyCache();
    const spy = vi.spyOn(crypto, 'createSecretKey');
    const session = new SrtpSession({ keys, profile: PROFILE_AES128_CM_HMAC_SHA1_80 });
    const after = [1, 2, 3].map((seq) => session.encrypt(payload, header(seq)));
    expect(after.map((b) => b.toString('hex'))).toEqual(before.map((b) => b.toString('hex')));
    const receiver = new SrtpSession({ keys, profile: PROFILE_AES128_CM_HMAC_SHA1_80 });
    for (const packet of after) expect(receiver.decrypt(packet).subarray(12).equals(payload)).toBe(true);
    // Raw keys became KeyObjects, once: the next hundred packets make none.
    expect(spy).toHaveBeenCalled();
    spy.mockClear();
    for (let seq = 10; seq < 110; seq++) session.encrypt(payload, header(seq));
    expect(spy).not.toHaveBeenCalled();
    spy.mockRestore();
  });
});
