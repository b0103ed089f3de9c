// What a client is told when the gateway refuses something: a code from a fixed list
// (one list per kind of request: streams/publish-refused.ts, webrtc/ice-update-refused.ts),
// the HTTP status that code maps to, words for the client, and when trying again may work.
// WHIP answers the status (with Retry-After), the WebSocket signalling the code.

export abstract class Refusal<C extends string> extends Error {
  constructor(
    readonly code: C,
    message: string,
    readonly status: number,
    /** For 429 and 503: when trying again may succeed. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}
