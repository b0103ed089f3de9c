import type { Response } from 'express';
import type { Refusal } from '../refusal.js';
import type { IceServer } from '../webrtc/ice-servers.js';
import { sendError } from './errors.js';
import { ICE_FRAGMENT } from './ice-patch.js';

// What WHIP (publishing) and WHEP (playback) answer alike: the 201 with the SDP answer and
// the session's resource, and a refusal with its status and, where trying again later
// can work, Retry-After.

/** RFC 9725 §4.6: the ICE servers as Link headers, TURN credentials as quoted parameters. */
export function linkHeaders(servers: IceServer[]): string[] {
  return servers.flatMap((s) =>
    (Array.isArray(s.urls) ? s.urls : [s.urls]).map((url) => {
      let link = `<${url}>; rel="ice-server"`;
      if (s.username) link += `; username="${s.username}"; credential="${s.credential ?? ''}"; credential-type="password"`;
      return link;
    }),
  );
}

/** 201 with the answer, the session's Location and ETag (its ICE session), PATCH accepted, the ICE servers. */
export function sendAnswer(res: Response, { location, etag, answer, servers }: { location: string; etag: string; answer: string; servers: IceServer[] }): void {
  res.status(201);
  res.setHeader('Location', location);
  res.setHeader('ETag', etag);
  res.setHeader('Accept-Patch', ICE_FRAGMENT);
  const links = linkHeaders(servers);
  if (links.length) res.setHeader('Link', links);
  res.type('application/sdp').send(answer);
}

export function sendRefusal(res: Response, e: Refusal<string>): void {
  if (e.retryAfterSeconds) res.setHeader('Retry-After', String(e.retryAfterSeconds));
  sendError(res, e.status, e.message);
}
