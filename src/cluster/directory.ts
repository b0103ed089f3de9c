import { hasRoom, type NodeLoad } from './choose-node.js';
import { MachineCpu } from './machine-cpu.js';

// The stream directory: which node of a cluster has which stream, and where a new
// publisher should go. One interface, two implementations chosen at start-up (LiveKit's
// LocalRouter and RedisRouter): LocalDirectory for a gateway that runs alone (no Redis,
// nothing asked of anyone: every name is free once this node's registry says so) and
// RedisDirectory (redis-directory.ts) for a node of a cluster. The registry asks it to own
// a name before publishing; the HTTP layer asks it where a stream lives.

/** A node as the directory knows it (its entry in Redis, refreshed by its heartbeat). */
export interface NodeEntry extends NodeLoad {
  /** host:port of its URL. */
  id: string;
  url: string;
  version: string;
  startedAt: string;
  /** What GET /api/streams shows of each of its streams, as of its last heartbeat. */
  streams: Record<string, unknown>[];
}

/** A node in the dashboard's list: up, or gone (its entry expired) within the last minutes. */
export interface NodeView extends NodeEntry {
  state: 'up' | 'gone';
  /** This node (the one answering). */
  self: boolean;
  /** When it last refreshed its entry (ISO time). */
  seenAt: string;
}

/** Where an offer for a name should be published. */
export type Placement =
  | { kind: 'here' }
  | { kind: 'elsewhere'; node: NodeEntry }
  /** The name is live on another node. */
  | { kind: 'taken'; node: NodeEntry }
  /** No node has room; `reason` says why this one has none. */
  | { kind: 'full'; reason: string };

/** What this node has, as the directory needs it (the registry and the health figures). */
export interface LocalNode {
  sessions(): number;
  has(name: string): boolean;
  streams(): Record<string, unknown>[];
}

/** The cluster's directory cannot be reached (Redis is down): a cluster-wide answer cannot be given. */
export class ClusterUnavailable extends Error {}

/** The name is owned by another node. */
export class NameTaken extends Error {
  constructor(readonly node: string) {
    super(`the name is live on node ${node}`);
  }
}

export interface StreamDirectory {
  /** Whether this node is part of a cluster (false: LocalDirectory). */
  readonly clustered: boolean;
  /** This node's id (host:port of its URL); undefined alone. */
  readonly nodeId: string | undefined;
  /** What this node has; called once, when the registry exists. */
  attach(local: LocalNode): void;
  /** Where an offer for `name` should go. Throws ClusterUnavailable. */
  place(name: string): Promise<Placement>;
  /** Makes `name` this node's before it is published here. Throws NameTaken or ClusterUnavailable. */
  claim(name: string): Promise<void>;
  /** Gives up `name` (its stream ended here). */
  release(name: string): void;
  /** The other node `name` is live on, if any. Throws ClusterUnavailable. */
  ownerOf(name: string): Promise<NodeEntry | undefined>;
  /** Every node, up and recently gone (this one alone: itself). Throws ClusterUnavailable. */
  nodes(): Promise<NodeView[]>;
  /** This node's streams changed: tell the cluster soon rather than at the next heartbeat. */
  changed(): void;
  /** Leaves the cluster at once (SIGTERM): its entry and names go, no one is sent here any more. */
  leave(): Promise<void>;
  /** Stops (after the streams have ended): connections and timers. */
  close(): Promise<void>;
}

/** A gateway alone: every name is its own, and it is full at cluster.maxSessions or maxCpuPercent. */
export class LocalDirectory implements StreamDirectory {
  readonly clustered = false;
  readonly nodeId = undefined;
  private local: LocalNode | undefined;
  private readonly cpu = new MachineCpu();
  private readonly timer: NodeJS.Timeout | undefined;

  /** This gateway's URL (set once it listens: the configured port may be 0). */
  url = '';

  constructor(
    private readonly limits: { maxSessions: number; maxCpuPercent: number },
    private readonly self: { version: string; startedAt: string },
    sampleMs: number,
  ) {
    // The CPU ceiling needs the machine's CPU now and then; without one nothing runs.
    if (limits.maxCpuPercent > 0) {
      this.timer = setInterval(() => this.cpu.sample(), sampleMs);
      this.timer.unref();
    }
  }

  attach(local: LocalNode): void {
    this.local = local;
  }

  place(name: string): Promise<Placement> {
    if (this.local?.has(name)) return Promise.resolve({ kind: 'here' });
    const me = this.entry();
    return Promise.resolve(hasRoom(me) ? { kind: 'here' } : { kind: 'full', reason: fullReason(me) });
  }

  claim(_name: string): Promise<void> {
    return Promise.resolve();
  }

  release(_name: string): void {}

  ownerOf(_name: string): Promise<NodeEntry | undefined> {
    return Promise.resolve(undefined);
  }

  nodes(): Promise<NodeView[]> {
    return Promise.resolve([{ ...this.entry(), state: 'up', self: true, seenAt: new Date().toISOString() }]);
  }

  changed(): void {}

  leave(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    return Promise.resolve();
  }

  private entry(): NodeEntry {
    const id = this.url ? new URL(this.url).host : '';
    const { maxSessions, maxCpuPercent } = this.limits;
    return { id, url: this.url, ...this.self, sessions: this.local?.sessions() ?? 0, maxSessions, maxCpuPercent, cpuPercent: this.cpu.cpuPercent, streams: this.local?.streams() ?? [] };
  }
}

/** Why a node takes no new publisher, in words. */
export function fullReason(node: NodeLoad): string {
  if (node.maxSessions > 0 && node.sessions >= node.maxSessions) return `it has ${node.sessions} publishers (cluster.maxSessions ${node.maxSessions})`;
  return `its machine's CPU is at ${node.cpuPercent} % (cluster.maxCpuPercent ${node.maxCpuPercent})`;
}
