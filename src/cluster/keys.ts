// Every key and channel the cluster keeps in Redis, in one place (all under "wrg:").
//
//   wrg:node:<id>     a node's entry (JSON: URL, load, version, its streams), PX 4 heartbeats
//   wrg:nodes         sorted set: node id -> when it last refreshed its entry (ms), so a
//                     node whose entry expired is listed as gone for a while
//   wrg:owner:<name>  who owns a stream name: "<node id> <instance>", SET NX PX, refreshed
//                     by the owner's heartbeat, deleted when its stream ends
//   wrg:resume:<name> the REST-started outputs of a stream, for a returning publisher on
//                     any node (streams.resumeOutputsSeconds)
//   wrg:ticket-key    the HMAC key of HLS segment tickets, shared so any node can check one
//   wrg:events        pub/sub channel: every node's gateway events

const PREFIX = 'wrg:';
export const NODES = `${PREFIX}nodes`;
export const EVENTS = `${PREFIX}events`;
export const TICKET_KEY = `${PREFIX}ticket-key`;
export const nodeKey = (id: string): string => `${PREFIX}node:${id}`;
export const ownerKey = (name: string): string => `${PREFIX}owner:${name}`;
export const resumeKey = (name: string): string => `${PREFIX}resume:${name}`;

/** A node silent for this many heartbeats has left the cluster's view. */
export const HEARTBEATS_TO_LIVE = 4;
/** How long a node that has gone stays in the list (as gone). */
export const GONE_KEPT_MS = 10 * 60_000;

/**
 * Refreshes the names a node owns (KEYS), in one round trip: a name still its own gets its
 * TTL again, one that expired (Redis restarted empty, or was down longer than the TTL) is
 * taken again with SET NX semantics, and one another node took meanwhile is returned.
 */
export const REFRESH_NAMES = `
local lost = {}
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == false then redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
  elseif v == ARGV[1] then redis.call('PEXPIRE', k, ARGV[2])
  else table.insert(lost, k) end
end
return lost`;

/** Deletes a name only while it is still this node's (KEYS[1], ARGV[1]: the owner value). */
export const RELEASE_NAME = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
