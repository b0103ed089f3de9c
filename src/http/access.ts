import type { Request, RequestHandler, Response, Router } from 'express';
import type { RouteParameters } from 'express-serve-static-core';
import type { Authorizer } from '../auth/authorizer.js';
import { OPEN, type Action, type Grant } from '../auth/permissions.js';
import type { Tickets } from '../auth/tickets.js';
import { sendError } from './errors.js';

// Every route is registered here with the right it needs, so none can be added without
// one (the access test walks `rules` and tries each route anonymously and with every
// right). Credentials come as `Authorization: Bearer <token>`, or, for players and links
// that cannot send headers (HLS, /live, recordings, an EventSource), as `?token=` on GET
// routes that only read: a publish, control or metrics token never has to go into a URL,
// where logs and proxies keep it. An HLS segment also takes the short-lived `?ticket=` its
// playlist named it with.

export type RouteAction = Action | 'public';

export interface RouteRule {
  method: string;
  path: string;
  action: RouteAction;
}

type Method = 'get' | 'post' | 'delete' | 'patch' | 'all';

export interface RouteOptions {
  /** The stream a request is about (its rights are checked against the stream's name). */
  stream?: (req: Request) => string | undefined;
  /**
   * Whether a valid `?ticket=` for the stream stands for the token on this request (HLS
   * segments, not playlists: see http/hls.ts).
   */
  ticket?: (req: Request) => boolean;
}

export class Access {
  readonly rules: RouteRule[] = [];

  constructor(
    readonly authorizer: Authorizer,
    readonly tickets: Tickets,
  ) {}

  get enabled(): boolean {
    return this.authorizer.enabled;
  }

  route<P extends string>(router: Router, method: Method, path: P | P[], action: RouteAction, options: RouteOptions, ...handlers: RequestHandler<RouteParameters<P>>[]): void {
    for (const p of [path].flat()) this.rules.push({ method: method.toUpperCase(), path: p, action });
    const chain = (action === 'public' ? handlers : [this.guard(action, options), ...handlers]) as RequestHandler[];
    router[method](path, ...chain);
  }

  guard(action: Action, options: RouteOptions = {}): RequestHandler {
    return (req, res, next) => {
      const stream = options.stream?.(req);
      const ticket = typeof req.query.ticket === 'string' ? req.query.ticket : undefined;
      if (options.ticket && stream && ticket && this.enabled && !tokenOf(req, action)) {
        const problem = this.ticketProblem(stream, ticket, options.ticket(req));
        if (!problem) return next();
        res.setHeader('WWW-Authenticate', 'Bearer');
        return sendError(res, 401, problem);
      }
      void this.authorizer.check({ action, stream, token: tokenOf(req, action), ip: req.socket.remoteAddress ?? '' }).then((d) => {
        if (d.ok) {
          res.locals.grant = d.grant;
          return next();
        }
        if (d.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
        if (d.retryAfterSeconds) res.setHeader('Retry-After', String(d.retryAfterSeconds));
        sendError(res, d.status, d.reason);
      }, next);
    };
  }

  /** Why a ticket does not open this request (a 401 that says so), or undefined when it does. */
  private ticketProblem(stream: string, ticket: string, takesTicket: boolean): string | undefined {
    if (!takesTicket) return 'a ticket opens the segments its playlist names, not a playlist: open the playlist with ?token=';
    const expires = this.tickets.expiryOf(stream, ticket);
    if (expires === undefined) return `invalid ticket for stream ${stream}`;
    if (expires <= Date.now()) return 'the ticket has expired: reload the playlist (with ?token=) for new ones';
    return undefined;
  }
}

/** The stream a route is about, from one of its path parameters. */
export function param(name: string): (req: Request) => string | undefined {
  return (req) => {
    const v = req.params[name];
    return typeof v === 'string' ? v : undefined;
  };
}

/** The bearer token of a request: the header, or ?token= on a GET that needs the read right. */
export function tokenOf(req: Request, action: Action): string | undefined {
  const header = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (header) return header[1];
  if (action !== 'read' || req.method !== 'GET') return undefined;
  return typeof req.query.token === 'string' && req.query.token ? req.query.token : undefined;
}

/** What the request's credential allows (everything while auth is off). */
export function grantOf(res: Response): Grant {
  return (res.locals.grant as Grant | undefined) ?? OPEN;
}
