import type { Grant } from '../auth/permissions.js';
import type { StreamInfo } from '../streams/stream.js';

// What a stream's API entry shows to whom. The ICE pair holds the publisher's IP address
// and port: a viewer's read token must not learn where a publisher is (an operator with
// the control right on the stream sees it, to debug a connection).

export function streamFor(info: StreamInfo, grant: Grant): StreamInfo {
  if (grant.allows('control', info.name)) return info;
  const { ice: _addresses, ...rest } = info;
  return rest;
}
