import { z } from 'zod';
import { candidateAddress } from '../sdp/offer-shapes.js';

// The ICE candidate pair a session uses, as a zod schema: the API shows it (a stream's
// `ice`) and /api/openapi.json is generated from it. ice-updates.ts takes its SelectedPair
// type from here with `import type`: the media workers it runs in do not load zod.

export const selectedPair = z
  .strictObject({
    local: candidateAddress.describe("the gateway's candidate"),
    remote: candidateAddress.describe("the publisher's candidate, as the gateway sees it"),
  })
  .describe("the selected ICE candidate pair, once live; shown only to a token with the control right on the stream (it holds the publisher's address)");
