import { matchesPattern } from '../config/wildcard.js';

// What a credential may do: actions on streams whose names match a pattern, as
// MediaMTX's permissions ({action, path}) are.
// - publish: WHIP POST/DELETE, WebSocket publish, ICE servers (TURN credentials);
// - read: HLS, /live, recordings, the stream list and details, events, snapshots;
// - control: REST writes (outputs, disconnecting a stream, deleting recordings), and metrics;
// - metrics: /metrics only (a scraper's token).

export const ACTIONS = ['publish', 'read', 'control', 'metrics'] as const;
export type Action = (typeof ACTIONS)[number];

export interface Permission {
  action: Action;
  /** Stream name or pattern with * wildcards; "*" = every stream. */
  streams: string;
}

/** What one checked credential allows. */
export interface Grant {
  /** No credentials are needed at all (auth off). */
  readonly open: boolean;
  allows(action: Action, stream?: string): boolean;
}

export const OPEN: Grant = { open: true, allows: () => true };

/**
 * A grant from a list of permissions. Without a stream (a list, /metrics), any permission
 * for the action counts: lists are then filtered stream by stream.
 */
export function grantOf(permissions: Permission[]): Grant {
  return {
    open: false,
    allows(action, stream) {
      return permissions.some((p) => (p.action === action || (action === 'metrics' && p.action === 'control')) && (stream === undefined || matchesPattern(p.streams, stream)));
    },
  };
}
