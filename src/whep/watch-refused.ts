import { Refusal } from '../refusal.js';

// Every reason a WHEP offer to watch is refused, with the HTTP status WHEP answers (the
// README's table is checked against it, as the publish refusals' is).

export const WATCH_REFUSALS = {
  'no-stream': { status: 404, meaning: 'no stream of that name is being published' },
  'bad-sdp': { status: 400, meaning: 'the offer cannot be answered: not SDP, no section that receives audio or video, more than 8 sections or 64 candidates, sections not bundled on one transport, a part werift cannot read' },
  'no-codec': { status: 406, meaning: "nothing in the offer can receive the stream's codecs (the message says what the stream has and what was offered)" },
  'stream-full': { status: 503, meaning: 'the stream has whep.maxViewersPerStream viewers' },
  'gateway-full': { status: 503, meaning: 'the gateway has whep.maxViewers viewers' },
  unavailable: { status: 503, meaning: 'the gateway cannot answer now: no free ICE port or candidate, the media worker is restarting, or the stream is ending' },
} as const satisfies Record<string, { status: 400 | 404 | 406 | 503; meaning: string }>;

export type WatchRefusalCode = keyof typeof WATCH_REFUSALS;

export class WatchRefused extends Refusal<WatchRefusalCode> {
  constructor(code: WatchRefusalCode, message: string, retryAfterSeconds?: number) {
    super(code, message, WATCH_REFUSALS[code].status, retryAfterSeconds);
  }
}
