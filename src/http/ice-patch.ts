import type { Request, Response } from 'express';
import type { Logger } from '../log.js';
import type { IceUpdateResult } from '../media/worker-messages.js';
import { answerFragment, parseIceFragment, type IceUpdate } from '../sdp/ice-fragment.js';
import { SdpError } from '../sdp/offer.js';
import { IceUpdateRefused } from '../webrtc/ice-update-refused.js';
import { OfferNotAnswerable } from '../webrtc/publisher-peer.js';
import { sendError } from './errors.js';

// PATCH on a WHIP or WHEP session resource (RFC 9725 §4.3, the same for WHEP): an
// application/trickle-ice-sdpfrag body with candidates the client gathered after its
// offer (204), or new ICE credentials, an ICE restart (200 with the gateway's new
// credentials and candidates, and a new ETag). The ETag names the current ICE session.
// If-Match with another one is 412 (the candidates were for an ICE session restarted
// since); If-Match is required (428) only when the fragment carries no ice-ufrag either,
// since then nothing tells which ICE session its candidates are for.

export const ICE_FRAGMENT = 'application/trickle-ice-sdpfrag';

/** Whether an If-Match header names `etag` (a list of entity tags; strong comparison, RFC 9110 §13.1.1). */
function ifMatches(header: string, etag: string): boolean {
  return header.split(',').some((t) => t.trim() === etag);
}

export interface IcePatchTarget {
  /** The session's current entity tag (it changes with each restart). */
  etag: () => string;
  update: (update: IceUpdate) => Promise<IceUpdateResult>;
  /** For the log, when werift cannot restart. */
  logFields: Record<string, string>;
}

/** Answers a PATCH for `target` (the session exists; the body was read as text). */
export async function patchIce(req: Request, res: Response, target: IcePatchTarget, log: Logger): Promise<void> {
  res.setHeader('Accept-Patch', ICE_FRAGMENT);
  if (!req.is(ICE_FRAGMENT)) return sendError(res, 415, `Content-Type must be ${ICE_FRAGMENT} (got ${req.headers['content-type'] ?? 'none'})`);
  let update;
  try {
    update = parseIceFragment(typeof req.body === 'string' ? req.body : '');
  } catch (e) {
    if (e instanceof SdpError) return sendError(res, 400, e.message);
    throw e;
  }
  const ifMatch = req.headers['if-match'];
  if (ifMatch !== undefined && ifMatch.trim() !== '*' && !ifMatches(ifMatch, target.etag())) {
    res.setHeader('ETag', target.etag());
    return sendError(res, 412, `If-Match ${ifMatch} is not the session's entity tag ${target.etag()}: its ICE session has been restarted since`);
  }
  if (ifMatch === undefined && update.ufrag === undefined) {
    return sendError(res, 428, 'send If-Match with the session\'s ETag (or a=ice-ufrag in the fragment): without either, nothing tells which ICE session the candidates are for');
  }
  try {
    const result = await target.update(update);
    res.setHeader('ETag', target.etag());
    if (!result.restarted || !result.answer) return void res.status(204).end();
    res.status(200).type(ICE_FRAGMENT).send(answerFragment(result.answer));
  } catch (e) {
    if (e instanceof IceUpdateRefused) {
      if (e.status === 412) res.setHeader('ETag', target.etag());
      return sendError(res, e.status, e.message);
    }
    if (e instanceof OfferNotAnswerable) {
      log.warn({ event: 'ice-restart-failed', ...target.logFields, detail: e.detail }, 'werift could not restart ICE');
      return sendError(res, 400, `the ICE restart could not be answered (${e.message}); the session has ended: start again`);
    }
    throw e;
  }
}
