import type { RequestHandler } from 'express';

// Browser WHIP and WHEP clients and players are often served from another origin, so WHIP, API and
// HLS routes answer CORS preflights and expose the headers a WHIP client must read.

export function cors(origins: string[]): RequestHandler {
  const any = origins.includes('*');
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (any) res.setHeader('Access-Control-Allow-Origin', '*');
    else if (origin && origins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
    }
    res.setHeader('Access-Control-Expose-Headers', 'Location, ETag, Link, Accept-Post, Accept-Patch, Retry-After');
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PATCH, DELETE, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Authorization, If-Match');
      res.setHeader('Access-Control-Max-Age', '600');
      if (/^\/wh[ie]p\/[^/]+\/?$/.test(req.path)) res.setHeader('Accept-Post', 'application/sdp');
      if (/^\/wh[ie]p\/[^/]+\/[^/]+$/.test(req.path)) res.setHeader('Accept-Patch', 'application/trickle-ice-sdpfrag');
      res.status(204).end();
      return;
    }
    next();
  };
}
