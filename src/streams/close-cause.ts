// Why a stream ended, as a typed cause (what the gateway acts on: whether outputs wait for
// a returning publisher) and a sentence for logs, events and the publisher (what people read).

export const CLOSE_CAUSES = {
  /** The publisher ended it: WHIP DELETE, an `unpublish`, its DTLS closed, its signalling socket closed. */
  left: 'the publisher ended the session',
  /** The publisher went away without a word: ICE/DTLS failed, disconnected too long, no media, a failed ICE restart. */
  lost: 'the publisher went away',
  /** It never connected (ice.connectTimeoutMs). */
  unconnected: 'ICE/DTLS did not connect in time',
  /** A new offer or publisher took the name. */
  replaced: 'replaced by a new publisher',
  /** An operator removed it (DELETE /api/streams/:name). */
  removed: 'removed over the API',
  /** The gateway is stopping. */
  shutdown: 'the gateway is shutting down',
  /** Its media worker stopped. */
  workerLost: 'its media worker stopped',
} as const;

export type CloseCause = keyof typeof CLOSE_CAUSES;

export interface StreamEnd {
  cause: CloseCause;
  /** In words: the cause's own sentence, or what exactly happened. */
  reason: string;
}

export function streamEnd(cause: CloseCause, detail?: string): StreamEnd {
  return { cause, reason: detail ?? CLOSE_CAUSES[cause] };
}
