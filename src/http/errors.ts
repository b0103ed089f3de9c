import type { ErrorRequestHandler, Response } from 'express';
import type { Logger } from '../log.js';

// Every refusal is a status and a one-line plain-text message naming the problem, so a
// WHIP client or curl user sees what to fix. Unexpected errors are logged, never crash.

export function sendError(res: Response, status: number, message: string): void {
  res.status(status).type('text/plain').send(`${message}\n`);
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const e = err as { status?: number; type?: string; message?: string };
    if (e.type === 'entity.too.large') return sendError(res, 413, 'request body too large');
    if (e.status && e.status >= 400 && e.status < 500) return sendError(res, e.status, e.message ?? 'bad request');
    log.error({ err, method: req.method, path: req.path }, 'request failed');
    if (!res.headersSent) sendError(res, 500, 'internal error');
  };
}
