import { Refusal } from '../refusal.js';

// Every reason an offer to publish is refused, with the HTTP status WHIP answers and the
// code the WebSocket signalling sends: one list, so both say the same thing (they had
// drifted: a transcode-capacity refusal was 503 over WHIP and "internal" over WebSocket),
// and the README's table is checked against it.

export const PUBLISH_REFUSALS = {
  'bad-stream-name': { status: 400, meaning: 'the name is not 1-64 characters of A-Z, a-z, 0-9, "_" or "-"' },
  'bad-sdp': {
    status: 400,
    meaning: 'the offer cannot be answered: not SDP, no audio or video section, nothing sent, more than 8 sections or 64 candidates, sections not bundled on one transport, a part werift cannot read',
  },
  'no-codec': { status: 406, meaning: 'no section with an acceptable codec (the message lists what was offered and what is accepted); a section without one next to a usable one is left out and named instead' },
  'stream-busy': { status: 409, meaning: 'the name is already being published (or set streams.replaceExisting)' },
  'too-many-connecting': { status: 429, meaning: 'this address has streams.maxConnectingPerAddress offers still connecting' },
  'gateway-busy': { status: 503, meaning: 'the gateway has streams.maxConnecting offers still connecting' },
  'no-transcode-capacity': { status: 503, meaning: 'a VP8/VP9 offer while transcode.maxConcurrent streams are being transcoded' },
  'gateway-full': { status: 503, meaning: 'the gateway has cluster.maxSessions publishers or its machine is over cluster.maxCpuPercent, and no node of its cluster has room (a node with room gets the offer by a 307 instead)' },
  'cluster-unavailable': { status: 503, meaning: "the cluster's directory (Redis) cannot be reached, so the name cannot be made sure to be unique; the node's own streams go on" },
  'unavailable': { status: 503, meaning: 'the gateway cannot answer now: no free ICE port or candidate, its media workers are restarting, or it is shutting down' },
} as const satisfies Record<string, { status: 400 | 406 | 409 | 429 | 503; meaning: string }>;

export type PublishRefusalCode = keyof typeof PUBLISH_REFUSALS;

/** An offer the gateway does not take: the reason, in words for the client, and when to try again. */
export class PublishRefused extends Refusal<PublishRefusalCode> {
  constructor(code: PublishRefusalCode, message: string, retryAfterSeconds?: number) {
    super(code, message, PUBLISH_REFUSALS[code].status, retryAfterSeconds);
  }
}
