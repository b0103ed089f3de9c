import { isIP } from 'node:net';
import { z } from 'zod';
import type { Output } from '../../streams/output-contract.js';
import type { Stream, StreamEncoder } from '../../streams/stream.js';
import type { PushTargets } from '../../egress/allowed-targets.js';
import { EVEN_PORT_RULE } from '../../pipelines/definition.js';
import { checkTarget, OutputRequestError, sdpUrl } from '../kind.js';
import { isTranscoded } from '../../webrtc/codec-policy.js';
import { RtpOutput } from '../rtp-output.js';

// "rtp": the publisher's RTP forwarded as it is to a remote player, no ffmpeg (so no
// pipeline JSON); a VP8/VP9 publisher's video as the stream's H.264 unless videoCodec is
// original. Its params are checked here; the target like any other.

const evenPort = z.number().int().min(1024).max(65534).refine((p) => p % 2 === 0, EVEN_PORT_RULE);

/** What an "rtp" output takes (also the source of its OpenAPI schema). */
export const rtpParams = z
  .object({
    host: z.string().min(1).max(253).refine((h) => isIP(h) !== 0 || /^[A-Za-z0-9.-]+$/.test(h), 'must be an IP address or host name').describe('where to send (IP address or host name)'),
    videoPort: evenPort.optional().describe('even UDP port for video (RTCP uses the one above)'),
    audioPort: evenPort.optional().describe('even UDP port for audio (RTCP uses the one above)'),
    videoCodec: z.enum(['h264', 'original']).optional().describe("a VP8/VP9 publisher's video: h264 (default), the stream's transcode, or original, as sent"),
  })
  .strict()
  .refine((p) => p.videoPort !== undefined || p.audioPort !== undefined, 'give videoPort, audioPort or both');

/** rtp://host:port, with brackets for IPv6. */
export function rtpUrl(host: string, port: number): string {
  return `rtp://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

export class RtpKind {
  constructor(
    private readonly targets: PushTargets,
    /** The stream's H.264 made from VP8/VP9 (shared-h264.ts). */
    private readonly sharedVideo?: (stream: Stream) => StreamEncoder,
  ) {}

  async start(stream: Stream, body: Record<string, unknown>, id?: string): Promise<Output> {
    const parsed = rtpParams.safeParse(body);
    if (!parsed.success) throw new OutputRequestError(400, parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    const { videoCodec, ...p } = parsed.data;
    const { address } = await checkTarget(this.targets, rtpUrl(p.host, p.videoPort ?? p.audioPort ?? 0), 'host');
    const video = stream.tracks.find((t) => t.kind === 'video');
    const transcoded = p.videoPort !== undefined && video !== undefined && isTranscoded(video.codec) && videoCodec !== 'original' ? this.sharedVideo?.(stream) : undefined;
    // Sent to the address that was checked (a host name is not looked up again per packet).
    return stream.attachOutput(new RtpOutput(stream, { ...p, host: address }, id, (outputId) => ({ sdp: sdpUrl(stream, outputId) }), transcoded));
  }
}
