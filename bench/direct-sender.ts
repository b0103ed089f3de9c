import { RTP_EXTENSION_URI, type RTCRtpSender } from 'werift';
import type { ReplaySink } from './media.js';

// The bench publishers' own cost, made small. werift's sender path (RTCRtpSender.sendRtp)
// parses every packet, clones it, rebuilds its header extensions, serialises it and feeds
// its bandwidth estimator: ~90 us of CPU per packet, so 30 publishers took 73 % of a core
// on the same 2 cores as the gateway and fell 0.8 s behind in bursts, which overflowed
// the gateway's sockets (the drops were the load generator's, not the gateway's).
//
// Once a publisher is connected, this sends the replayed packets straight into its DTLS
// transport's SRTP context and ICE connection: the RTP header (with the transport-wide
// sequence number extension a browser sends) is written into a buffer, encrypted with
// werift's own cipher for the negotiated profile (so the crypto is exactly what a werift
// publisher does) and handed to the nominated pair. ICE consent, DTLS and RTCP (PLIs from
// the gateway) still run in werift as before; NACKs are not answered (nothing is lost on
// loopback unless a socket overflows, which the bench counts).

/** The part of werift's SRTP cipher used here (CipherAesCtr and CipherAesGcm both have it). */
interface RtpCipher {
  encryptRtp(header: HeaderLike, payload: Buffer, rolloverCounter: number): Buffer;
}
interface HeaderLike {
  sequenceNumber: number;
  ssrc: number;
  serializeSize: number;
  serialize(size: number): Buffer;
}
interface Transport {
  srtp: { localContext: { cipher: RtpCipher } };
  iceTransport: { connection: { send(data: Buffer): Promise<void> } };
}

/** One track's sending state: its SSRC and where its sequence numbers have wrapped. */
class TrackSender {
  readonly ssrc: number;
  readonly payloadType: number;
  /** The transport-cc extension's id in this track's m-section, if negotiated. */
  readonly twccId: number | undefined;
  private roc = 0;
  private lastSeq = -1;
  constructor(sender: RTCRtpSender) {
    this.ssrc = sender.ssrc;
    this.payloadType = sender.codec?.payloadType ?? 0;
    // Private in werift's typings: the extensions negotiated for this sender's m-section.
    const negotiated = (sender as unknown as { headerExtensions: { uri: string; id: number }[] }).headerExtensions;
    this.twccId = negotiated.find((e) => e.uri === RTP_EXTENSION_URI.transportWideCC)?.id;
  }

  /** The rollover counter for `seq` (RFC 3711 3.3.1: counts wraps of the sequence number). */
  rollover(seq: number): number {
    if (this.lastSeq >= 0 && seq < this.lastSeq && this.lastSeq - seq > 0x8000) this.roc = (this.roc + 1) >>> 0;
    this.lastSeq = seq;
    return this.roc;
  }
}

/**
 * Where the clip's packets go once the publisher is connected (each packet: a 12-byte
 * header from ffmpeg, then payload; bundled, so both senders share one transport).
 */
export function directSink(senders: { video: RTCRtpSender; audio: RTCRtpSender }): ReplaySink {
  const transport = senders.video.dtlsTransport as unknown as Transport;
  const cipher = transport.srtp.localContext.cipher;
  const connection = transport.iceTransport.connection;
  let transportSeq = Math.floor(Math.random() * 0xffff);
  const tracks = { video: new TrackSender(senders.video), audio: new TrackSender(senders.audio) };
  const send = (t: TrackSender, raw: Buffer): void => {
    const { twccId } = t;
    const seq = raw.readUInt16BE(2);
    // 12 bytes of fixed header + (with transport-cc) one one-byte-header extension word.
    const headerSize = twccId === undefined ? 12 : 20;
    const header = Buffer.allocUnsafe(headerSize);
    raw.copy(header, 0, 0, 12);
    header[0] = 0x80 | (twccId === undefined ? 0 : 0x10); // V=2, X when there is an extension
    header[1] = (raw[1] & 0x80) | t.payloadType;
    header.writeUInt32BE(t.ssrc, 8);
    if (twccId !== undefined) {
      transportSeq = (transportSeq + 1) & 0xffff;
      header.writeUInt32BE(0xbede0001, 12); // one-byte header extensions, one word
      header[16] = (twccId << 4) | 1; // id, length 2
      header.writeUInt16BE(transportSeq, 17);
      header[19] = 0;
    }
    const like: HeaderLike = { sequenceNumber: seq, ssrc: t.ssrc, serializeSize: headerSize, serialize: () => header };
    const enc = cipher.encryptRtp(like, raw.subarray(12), t.rollover(seq));
    connection.send(enc).catch(() => undefined);
  };
  return { video: (b) => send(tracks.video, b), audio: (b) => send(tracks.audio, b) };
}
