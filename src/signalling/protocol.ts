import type { PublishRefusalCode } from '../streams/publish-refused.js';
import type { IceUpdateRefusalCode } from '../webrtc/ice-update-refused.js';
import { z } from 'zod';
import type { SenderReport } from '../streams/stream.js';

// The WebSocket signalling protocol at /ws: JSON messages, one per frame. Every message a
// client sends is checked here; anything else gets an {type: "error"} reply.

const candidate = z
  .object({
    candidate: z.string().max(2048),
    sdpMid: z.string().max(64).nullish(),
    sdpMLineIndex: z.number().int().min(0).max(64).nullish(),
    usernameFragment: z.string().max(256).nullish(),
  })
  .nullable();

/**
 * What the publisher's browser says it sends (its getStats()); the type is the stream's.
 * The same keys as SenderReport, no more (the stream shows what it is given, so a key
 * added only here would reach the API undescribed), with the bounds a client is held to.
 */
const kbps = z.number().min(0).max(1_000_000);
export const senderStats = z.strictObject({
  frameWidth: z.number().int().min(0).max(16384).optional(),
  frameHeight: z.number().int().min(0).max(16384).optional(),
  framesPerSecond: z.number().min(0).max(1000).optional(),
  bitrateKbps: kbps.optional(),
  targetKbps: kbps.optional(),
  availableKbps: kbps.optional(),
  qualityLimitationReason: z.enum(['none', 'bandwidth', 'cpu', 'other']).optional(),
} satisfies Record<keyof SenderReport, z.ZodType>) satisfies z.ZodType<SenderReport>;

export const clientMessage = z.discriminatedUnion('type', [
  /** The token for the messages that follow (when the subprotocol did not carry one). */
  z.object({ type: z.literal('auth'), token: z.string().min(1).max(8192) }).strict(),
  /** Publish an offer under a stream name; the answer comes back at once, candidates trickle. */
  z.object({ type: z.literal('publish'), stream: z.string(), sdp: z.string().max(128 * 1024) }).strict(),
  /** A publisher ICE candidate; null = end of candidates. */
  z.object({ type: z.literal('candidate'), candidate }).strict(),
  /**
   * An ICE restart (a publisher whose network changed): a new offer with new ICE
   * credentials for the session being published. From the publishing connection, or,
   * when that one went down with the network, from a new connection naming the stream
   * and session, which then takes the session over. Only ICE is renegotiated.
   */
  z.object({ type: z.literal('restart'), sdp: z.string().max(128 * 1024), stream: z.string().max(64).optional(), session: z.string().max(64).optional() }).strict(),
  z.object({ type: z.literal('unpublish') }).strict(),
  /** Receive gateway events and, every second, the stream list with stats. */
  z.object({ type: z.literal('subscribe'), stats: z.boolean().default(true) }).strict(),
  z.object({ type: z.literal('unsubscribe') }).strict(),
  z.object({ type: z.literal('ping') }).strict(),
  /**
   * The publisher's own sending statistics. From the connection that published, or (a
   * WHIP publisher) from any connection that names the stream and its session id.
   */
  z.object({ type: z.literal('sender-stats'), stream: z.string().max(64).optional(), session: z.string().max(64).optional(), stats: senderStats }).strict(),
]);

export type ClientMessage = z.infer<typeof clientMessage>;

/** Refusals of a publish (the same as WHIP's, streams/publish-refused.ts) and the signalling's own. */
export type ErrorCode = PublishRefusalCode | IceUpdateRefusalCode | 'bad-message' | 'already-publishing' | 'not-publishing' | 'unauthorized' | 'forbidden' | 'rate-limited' | 'internal';

export type ServerMessage =
  | { type: 'answer'; stream: string; session: string; sdp: string }
  | { type: 'candidate'; candidate: { candidate: string; sdpMid?: string; sdpMLineIndex?: number } | null }
  | { type: 'state'; state: string }
  | { type: 'unpublished'; stream: string; reason: string }
  | { type: 'streams'; streams: unknown[] }
  | { type: 'event'; event: unknown }
  | { type: 'pong' }
  /** In a cluster, this node is full: publish on the node at `url` (its /ws). */
  | { type: 'redirect'; stream: string; url: string }
  | { type: 'error'; code: ErrorCode; message: string; retryAfterSeconds?: number };
