import { randomInt } from 'node:crypto';
import type { RTCDtlsTransport, RTCPeerConnection, RtpPacket } from 'werift';
import { serializeFeedback, TwccRecorder } from '../rtp/twcc.js';
import { rawRtcp } from '../werift/raw-rtcp.js';

// Sends the publisher transport-wide congestion control feedback (see rtp/twcc.ts for
// why werift's own is not used). Every decrypted RTP packet of the transport is recorded
// with its arrival time: werift hands packets over synchronously from the socket's
// 'message' event through SRTP decryption, so the time taken here is the arrival time
// plus one packet's decryption. Probes and retransmissions count too: they carry
// transport-wide numbers, and reporting them missing would look like loss.
//
// Reports go out every FEEDBACK_INTERVAL_MS (libwebrtc sends every 50-250 ms; 50 ms at
// the bitrates of a camera), one recorder per DTLS transport (one with BUNDLE).

export const FEEDBACK_INTERVAL_MS = 50;

interface Recorded {
  transport: RTCDtlsTransport;
  recorder: TwccRecorder;
  unsubscribe: () => void;
}

export class CongestionFeedback {
  private readonly recorded: Recorded[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    pc: RTCPeerConnection,
    /** The transport-wide sequence number extension's id(s). */
    private readonly extensionIds: number[],
  ) {
    for (const transport of new Set(pc.dtlsTransports)) this.watch(transport);
    this.timer = setInterval(() => this.send(), FEEDBACK_INTERVAL_MS);
    this.timer.unref();
  }

  private watch(transport: RTCDtlsTransport): void {
    const recorder = new TwccRecorder(randomInt(1, 0xffffffff));
    const sub = transport.onRtp.subscribe((rtp: RtpPacket) => {
      const at = performance.now();
      const ext = rtp.header.extensions.find((e) => this.extensionIds.includes(e.id));
      if (!ext || ext.payload.length < 2) return;
      recorder.record(ext.payload.readUInt16BE(0), Math.round(at * 1000), rtp.header.ssrc);
    });
    this.recorded.push({ transport, recorder, unsubscribe: () => sub.unSubscribe() });
  }

  private send(): void {
    for (const { transport, recorder } of this.recorded) {
      const reports = recorder.feedback();
      if (reports.length === 0) continue;
      const packets = reports.map((r) => {
        const bytes = serializeFeedback(r);
        return { serialize: () => bytes };
      });
      transport.sendRtcp(rawRtcp(...packets)).catch(() => undefined);
    }
  }

  close(): void {
    clearInterval(this.timer);
    for (const r of this.recorded) r.unsubscribe();
    this.recorded.length = 0;
  }
}
