import { STATUS_CODES } from 'node:http';
import type { ErrorRequestHandler, Response } from 'express';
import { z } from 'zod';
import type { Logger } from '../log.js';

// Every refusal names the problem in one line. The REST API answers JSON
// {"error": "<status in words>", "message": "<what to fix>"}; WHIP, HLS, /live and the
// pages answer plain text (a WHIP client or curl user reads it as is). Unexpected errors
// are logged, never crash.

/** An error under /api/; /api/openapi.json is generated from it. */
export const errorBody = z.strictObject({
  error: z.string().describe('the status in words: not-found, bad-request, ...').meta({ examples: ['not-found'] }),
  message: z.string().describe('what to fix'),
});
export type ErrorBody = z.infer<typeof errorBody>;

/** "Not Found" -> "not-found". */
function code(status: number): string {
  return (STATUS_CODES[status] ?? 'error').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

export function sendError(res: Response, status: number, message: string): void {
  res.status(status);
  if (res.req?.path?.startsWith('/api/')) res.json({ error: code(status), message } satisfies ErrorBody);
  else res.type('text/plain').send(`${message}\n`);
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const e = err as { status?: number; type?: string; message?: string };
    if (e.type === 'entity.too.large') return sendError(res, 413, 'request body too large');
    if (e.type === 'entity.parse.failed') return sendError(res, 400, `body is not valid JSON: ${e.message ?? ''}`.trim());
    if (e.status && e.status >= 400 && e.status < 500) return sendError(res, e.status, e.message ?? 'bad request');
    log.error({ err, method: req.method, path: req.path }, 'request failed');
    if (!res.headersSent) sendError(res, 500, 'internal error');
  };
}
