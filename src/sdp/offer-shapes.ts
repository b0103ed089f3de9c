import { z } from 'zod';

// What offer.ts reports that the API shows (a stream's ICE pair and ignoredMedia), as zod
// schemas: /api/openapi.json is generated from them, and offer.ts takes its types from
// them. They live apart from offer.ts because offer.ts runs in the media workers, which do
// not load zod: it imports these with `import type`, which leaves no import at run time.

export const candidateAddress = z.strictObject({
  address: z.string(),
  port: z.number().int().min(0).max(65535),
  type: z.string().describe('host, srflx, prflx or relay'),
  protocol: z.string().describe('udp or tcp'),
});

/**
 * An m-section the publisher offered to send that the gateway leaves out of the session
 * (answered with port 0): named in the log, the stream's API entry and the built-in pages,
 * so that a stream without sound or picture says why.
 */
export const ignoredMedia = z.strictObject({
  index: z.number().int().min(0).describe('position of the m-section in the offer'),
  mid: z.string().optional(),
  kind: z.string().describe('audio or video'),
  reason: z.string(),
});
