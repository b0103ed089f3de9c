import { Refusal } from '../refusal.js';

// Every reason an ICE update of a live session (trickled candidates, an ICE restart) is
// refused, with the HTTP status a WHIP PATCH answers and the code the WebSocket signalling
// sends: one list, as for publishing (streams/publish-refused.ts). A malformed fragment or
// re-offer is an SdpError (400, 'bad-sdp') before it gets here.

export const ICE_UPDATE_REFUSALS = {
  'stale-ice-session': { status: 412, meaning: 'the candidates or credentials belong to an ICE session that has since been restarted' },
  'unknown-mid': { status: 422, meaning: 'a candidate names a section (a=mid) the session does not have or left out' },
  'sections-changed': { status: 400, meaning: 'a re-offer may only restart ICE: its sections (mids) must be those of the first offer' },
  'not-a-restart': { status: 400, meaning: 'a re-offer without new ICE credentials (call restartIce() before createOffer())' },
  'too-many-candidates': { status: 400, meaning: 'more than 64 candidates in one ICE session' },
  'bad-candidate': { status: 400, meaning: 'werift could not use a candidate' },
  'session-ended': { status: 404, meaning: 'the session ended meanwhile' },
} as const satisfies Record<string, { status: 400 | 404 | 412 | 422; meaning: string }>;

export type IceUpdateRefusalCode = keyof typeof ICE_UPDATE_REFUSALS;

export class IceUpdateRefused extends Refusal<IceUpdateRefusalCode> {
  constructor(code: IceUpdateRefusalCode, message: string) {
    super(code, message, ICE_UPDATE_REFUSALS[code].status);
  }
}
