import { RtcpRrPacket, type RTCDtlsTransport, type RTCPeerConnection } from 'werift';
import { rawRtcp } from './raw-rtcp.js';

// werift (0.25) says nothing when it closes a peer connection: RTCDtlsTransport.stop()
// has "todo impl send alert", no RTCP BYE goes out, and the remote end only notices when
// ICE consent runs out, ~30 s later. Measured with libdatachannel shaped like OBS: it
// stayed "connected" for 29.7 s after the gateway ended its session, sending into
// nothing. So before the gateway closes a publisher's peer it sends what RFC 3550 and
// RFC 6347 have for it: an RTCP BYE for its receiver SSRCs and a DTLS close_notify alert.
//
// The alert is built the way werift's DtlsSocket.send() builds an application-data
// record (werift/lib/dtls/src/socket.js): the next record sequence number of the current
// epoch, encrypted with the session's cipher, sent over the ICE transport. These are
// werift internals: test/integration/werift-patches.test.ts fails when they change.

/** The parts of werift's DtlsSocket this module uses. */
interface DtlsSocketInternals {
  dtls?: { version: { major: number; minor: number }; epoch: number; recordSequenceNumber: number };
  cipher?: {
    /** The negotiated suite; undefined before the handshake finished. */
    cipher?: unknown;
    encryptPacket(pkt: { recordLayerHeader: RecordHeader; fragment: Buffer }): { recordLayerHeader: RecordHeader; fragment: Buffer };
  };
  transport?: { send(buf: Buffer): Promise<unknown> | unknown };
}

interface RecordHeader {
  contentType: number;
  protocolVersion: { major: number; minor: number };
  epoch: number;
  sequenceNumber: number;
  contentLen: number;
}

const ALERT = 21; // DTLS record content type
const CLOSE_NOTIFY = Buffer.from([1, 0]); // level warning(1), description close_notify(0)

/**
 * Sends an encrypted close_notify alert on a connected DTLS transport. Returns false when
 * there is no established session to close (or werift's internals are not as expected).
 */
export async function sendDtlsCloseNotify(transport: RTCDtlsTransport): Promise<boolean> {
  const sock = transport.dtls as unknown as DtlsSocketInternals | undefined;
  const ctx = sock?.dtls;
  if (transport.state !== 'connected' || !sock?.cipher?.cipher || !sock.transport || !ctx || ctx.epoch === 0 || typeof ctx.recordSequenceNumber !== 'number') return false;
  const pkt = sock.cipher.encryptPacket({
    recordLayerHeader: { contentType: ALERT, protocolVersion: ctx.version, epoch: ctx.epoch, sequenceNumber: ++ctx.recordSequenceNumber, contentLen: CLOSE_NOTIFY.length },
    fragment: CLOSE_NOTIFY,
  });
  const record = Buffer.alloc(13 + pkt.fragment.length);
  record.writeUInt8(ALERT, 0);
  record.writeUInt8(ctx.version.major, 1);
  record.writeUInt8(ctx.version.minor, 2);
  record.writeUInt16BE(ctx.epoch, 3);
  record.writeUIntBE(pkt.recordLayerHeader.sequenceNumber, 5, 6);
  record.writeUInt16BE(pkt.fragment.length, 11);
  pkt.fragment.copy(record, 13);
  await sock.transport.send(record);
  return true;
}

/**
 * An RTCP BYE (RFC 3550 §6.6, PT 203) for `ssrcs` with a reason, as werift's sendRtcp
 * takes packets (anything with serialize()): werift has no BYE type of its own.
 */
export function rtcpBye(ssrcs: number[], reason?: string): { serialize(): Buffer } {
  return {
    serialize() {
      const why = reason ? Buffer.from(reason, 'utf8').subarray(0, 255) : Buffer.alloc(0);
      const body = 4 * ssrcs.length + (why.length ? 1 + why.length : 0);
      const padded = Math.ceil(body / 4) * 4;
      const buf = Buffer.alloc(4 + padded);
      buf.writeUInt8(0x80 | ssrcs.length, 0); // V=2, P=0, source count
      buf.writeUInt8(203, 1);
      buf.writeUInt16BE(padded / 4, 2); // length in 32-bit words, less the header's
      ssrcs.forEach((s, i) => buf.writeUInt32BE(s >>> 0, 4 + 4 * i));
      if (why.length) {
        buf.writeUInt8(why.length, 4 + 4 * ssrcs.length);
        why.copy(buf, 5 + 4 * ssrcs.length);
      }
      return buf;
    },
  };
}

/**
 * Tells the remote end the session is over: on every connected DTLS transport, an RTCP
 * compound packet (an empty RR, as RFC 3550 wants compound packets to start, then a BYE
 * for the gateway's receiver SSRCs, or `senderSsrcs`) and a close_notify. Best effort over UDP; never throws.
 * Returns the number of transports told. Resolves after werift's sends have left: its UDP
 * send does not wait, and a socket closed in the same tick drops what is queued.
 */
export async function announceClose(pc: RTCPeerConnection, reason: string, senderSsrcs?: number[]): Promise<number> {
  let told = 0;
  for (const dtls of new Set(pc.dtlsTransports)) {
    if (dtls.state !== 'connected') continue;
    // A peer that sends (a WHEP viewer's) says goodbye for the SSRCs it sent with.
    const own = senderSsrcs ?? pc
      .getTransceivers()
      .filter((t) => t.dtlsTransport === dtls)
      .map((t) => t.receiver.rtcpSsrc)
      .filter((s): s is number => typeof s === 'number');
    if (own.length) {
      await dtls.sendRtcp(rawRtcp(new RtcpRrPacket({ ssrc: own[0], reports: [] }), rtcpBye(own, reason))).catch(() => undefined);
    }
    if (await sendDtlsCloseNotify(dtls).catch(() => false)) told++;
  }
  await new Promise((resolve) => setImmediate(resolve));
  return told;
}
