import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { RequestHandler, Response } from 'express';
import type { Config } from '../config/schema.js';
import { sendError } from './errors.js';

// How many connections of each kind the gateway holds at once, in total and per client
// address. Without caps, 20,000 idle anonymous WebSockets used up the process's file
// descriptors and every HTTP request (/healthz, HLS, WHIP) failed with a reset until they
// closed. Each kind has its own caps, all well below the descriptor limit, so when one kind
// is at its cap the others (and ffmpeg's pipes, the ICE sockets, the files) still have
// room. Past a cap the client is told at once: 503 (the gateway is full) or 429 (this
// address has its share), both with Retry-After, never a hang or a silent reset.

export const LIMIT_KINDS = ['connections', 'requests', 'websockets', 'sse'] as const;
export type LimitKind = (typeof LIMIT_KINDS)[number];

export interface Cap {
  total: number;
  perAddress: number;
}

export type Admission = { ok: true; release: () => void } | { ok: false; status: 429 | 503; reason: string; retryAfterSeconds: number };

/** Seconds a refused client is asked to wait: long enough to shed a flood, short for a person. */
export const RETRY_AFTER_SECONDS = 5;

/** Descriptors kept free of client connections: ffmpeg pipes, ICE and RTP sockets, files. */
const FD_RESERVE_SHARE = 0.25;
const FD_RESERVE_MIN = 1024;

/** The process's limit on open files (RLIMIT_NOFILE), from /proc; 1024 where it cannot be read. */
export function fileDescriptorLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? 1_048_576 : Number(m[1]);
  } catch {
    // not Linux: the common default
  }
  return 1024;
}

/** The total connection cap when the configuration leaves it to the gateway (0): the descriptor limit less a reserve. */
export function connectionCapFor(fdLimit: number): number {
  return Math.max(64, fdLimit - Math.max(FD_RESERVE_MIN, Math.round(fdLimit * FD_RESERVE_SHARE)));
}

/** Open connections of one kind, in total and per address. */
class Counter {
  total = 0;
  refused = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(
    readonly kind: LimitKind,
    readonly cap: Cap,
  ) {}

  admit(address: string): Admission {
    const mine = this.byAddress.get(address) ?? 0;
    if (this.total >= this.cap.total) return this.refuse(503, `the gateway has as many ${this.kind} as it takes (${this.cap.total}, limits.${this.kind}.total); try again later`);
    if (mine >= this.cap.perAddress) return this.refuse(429, `${address} has as many ${this.kind} open as one address may (${this.cap.perAddress}, limits.${this.kind}.perAddress)`);
    this.total++;
    this.byAddress.set(address, mine + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.byAddress.get(address) ?? 1) - 1;
        if (left > 0) this.byAddress.set(address, left);
        else this.byAddress.delete(address);
      },
    };
  }

  private refuse(status: 429 | 503, reason: string): Admission {
    this.refused++;
    return { ok: false, status, reason, retryAfterSeconds: RETRY_AFTER_SECONDS };
  }
}

/** Paths whose responses last as long as the viewer stays: they have their own caps (SSE) or only the connection cap (/live). */
const LONG_LIVED = /^\/(live\/|api\/events$)/;

export class ConnectionLimits {
  private readonly counters: Record<LimitKind, Counter>;

  constructor(limits: Config['limits'], fdLimit = fileDescriptorLimit()) {
    const connections = { total: limits.connections.total || connectionCapFor(fdLimit), perAddress: limits.connections.perAddress };
    this.counters = {
      connections: new Counter('connections', connections),
      requests: new Counter('requests', limits.requests),
      websockets: new Counter('websockets', limits.websockets),
      sse: new Counter('sse', limits.sse),
    };
  }

  admit(kind: LimitKind, address: string | undefined): Admission {
    return this.counters[kind].admit(address ?? '');
  }

  cap(kind: LimitKind): Cap {
    return this.counters[kind].cap;
  }

  /** Open connections and refusals so far, by kind (metrics). */
  stats(): { kind: LimitKind; open: number; refused: number; cap: number }[] {
    return LIMIT_KINDS.map((kind) => ({ kind, open: this.counters[kind].total, refused: this.counters[kind].refused, cap: this.counters[kind].cap.total }));
  }

  /**
   * Counts the server's TCP connections. One over the cap gets a complete HTTP answer
   * written straight to its socket (it may not have sent its request yet), then closed;
   * a TLS connection, which cannot be answered before its handshake, is closed.
   */
  watch(server: Server, tls: boolean): void {
    server.on('connection', (socket: Socket) => {
      const a = this.admit('connections', socket.remoteAddress);
      if (a.ok) {
        socket.once('close', a.release);
        return;
      }
      if (tls) socket.destroy();
      else refuseSocket(socket, a);
    });
  }

  /** Express middleware: caps requests in progress (long-lived viewers are counted as connections only). */
  requests(): RequestHandler {
    return (req, res, next) => {
      if (LONG_LIVED.test(req.path)) return next();
      const a = this.admit('requests', req.socket.remoteAddress);
      if (!a.ok) return refuseResponse(res, a);
      res.once('close', a.release);
      next();
    };
  }
}

/**
 * A refused request's answer. The connection is closed after it: a client past its cap
 * keeps nothing open (a slow body would otherwise hold the socket until its deadline).
 */
export function refuseResponse(res: Response, refusal: { status: number; reason: string; retryAfterSeconds: number }): void {
  res.setHeader('Retry-After', String(refusal.retryAfterSeconds));
  res.setHeader('Connection', 'close');
  sendError(res, refusal.status, refusal.reason);
}

/** A refusal written as a whole HTTP response on a raw socket (connection over its cap, refused WebSocket upgrade). */
export function refuseSocket(socket: Socket, refusal: { status: number; reason: string; retryAfterSeconds?: number }): void {
  const text = `${refusal.reason}\n`;
  const status = refusal.status === 429 ? '429 Too Many Requests' : refusal.status === 503 ? '503 Service Unavailable' : refusal.status === 403 ? '403 Forbidden' : refusal.status === 404 ? '404 Not Found' : '400 Bad Request';
  const headers = [`HTTP/1.1 ${status}`, 'Content-Type: text/plain; charset=utf-8', `Content-Length: ${Buffer.byteLength(text)}`, 'Connection: close'];
  if (refusal.retryAfterSeconds) headers.push(`Retry-After: ${refusal.retryAfterSeconds}`);
  socket.on('error', () => undefined);
  socket.end(`${headers.join('\r\n')}\r\n\r\n${text}`);
  // A client that never reads must not hold the socket.
  setTimeout(() => socket.destroy(), 2000).unref();
}
