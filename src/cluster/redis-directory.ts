import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { chooseNode, hasRoom } from './choose-node.js';
import { ClusterUnavailable, fullReason, NameTaken, type LocalNode, type NodeEntry, type NodeView, type Placement, type StreamDirectory } from './directory.js';
import { GONE_KEPT_MS, HEARTBEATS_TO_LIVE, NODES, nodeKey, ownerKey, REFRESH_NAMES, RELEASE_NAME, resumeKey, TICKET_KEY } from './keys.js';
import { MachineCpu } from './machine-cpu.js';

// A node of a cluster: its entry (URL, load, version, streams) in Redis with a TTL its
// heartbeat refreshes, the names it owns (SET NX PX, refreshed likewise), and the others'
// entries read back to route publishers and viewers. A node that dies stops refreshing,
// and its entry and names expire within HEARTBEATS_TO_LIVE heartbeats (8 s by default).
//
// Redis going away does not stop a node: commands fail at once (no offline queue), the
// node keeps its own streams, says so once in the log, answers what needs the cluster
// with ClusterUnavailable (503), and ioredis reconnects by itself; the next heartbeat
// then writes the entry again and takes its names back (REFRESH_NAMES).

/** A node's entry as stored: what others see, and the process that wrote it. */
interface StoredEntry extends NodeEntry {
  instance: string;
}

/** How long a node's view of the others is reused (viewer redirects ask for it per request). */
const VIEW_MS = 500;
/** How long a node waits for Redis at start-up. */
const START_TIMEOUT_MS = 10_000;

export interface RedisDirectoryOptions {
  cluster: Config['cluster'] & { redis: string; nodeUrl: string };
  version: string;
  log: Logger;
}

export class RedisDirectory implements StreamDirectory {
  readonly clustered = true;
  readonly nodeId: string;
  /** The owner value of this process's names ("<node id> <instance>"). */
  private readonly me: string;
  private readonly instance = randomBytes(6).toString('hex');
  private readonly ttlMs: number;
  private readonly startedAt = new Date().toISOString();
  private readonly cpu = new MachineCpu();
  private readonly owned = new Set<string>();
  /** Streams whose REST outputs are kept for a returning publisher (refreshed with the heartbeat). */
  private readonly resumable = new Map<string, number>();
  private local: LocalNode | undefined;
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private view: { at: number; nodes: Promise<StoredEntry[]> } | undefined;
  private up = false;
  private left = false;

  private constructor(
    /** Commands. */
    readonly redis: Redis,
    /** Pub/sub (a connection in subscriber mode takes no other command). */
    readonly sub: Redis,
    private readonly options: RedisDirectoryOptions,
  ) {
    this.nodeId = new URL(options.cluster.nodeUrl).host;
    this.me = `${this.nodeId} ${this.instance}`;
    this.ttlMs = options.cluster.heartbeatMs * HEARTBEATS_TO_LIVE;
    const log = options.log;
    redis.on('ready', () => {
      if (!this.up && this.timer) log.warn({ event: 'cluster-redis-up', redis: redactUrl(options.cluster.redis) }, 'Redis is reachable again: this node rejoins the cluster');
      this.up = true;
      if (this.timer) void this.heartbeat();
    });
    const down = (why: string) => {
      if (this.up && !this.left) log.error({ event: 'cluster-redis-down', redis: redactUrl(options.cluster.redis), error: why }, 'Redis is unreachable: this node serves its own streams and answers cluster-wide requests with 503 until it is back (reconnecting by itself)');
      this.up = false;
      this.view = undefined;
    };
    redis.on('close', () => down('connection closed'));
    redis.on('error', (e: Error) => down(e.message));
    sub.on('error', () => undefined); // the command connection reports the outage
  }

  /** Connects (waiting for Redis up to 10 s) and registers this node. */
  static async connect(options: RedisDirectoryOptions): Promise<RedisDirectory> {
    const common = { connectTimeout: 2000, lazyConnect: true, retryStrategy: (n: number) => Math.min(100 * n, 1000) };
    const redis = new Redis(options.cluster.redis, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    const sub = new Redis(options.cluster.redis, { ...common, maxRetriesPerRequest: null });
    const dir = new RedisDirectory(redis, sub, options);
    try {
      await Promise.race([
        Promise.all([redis.connect(), sub.connect()]),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS).unref()),
      ]);
    } catch (e) {
      redis.disconnect();
      sub.disconnect();
      throw new ClusterUnavailable(`cannot reach Redis at ${redactUrl(options.cluster.redis)}: ${(e as Error).message}`);
    }
    dir.up = true;
    return dir;
  }

  /** The HMAC key of HLS tickets, the same on every node (the first node to start makes it). */
  async ticketKey(): Promise<Buffer> {
    await this.redis.set(TICKET_KEY, randomBytes(32).toString('base64'), 'NX');
    return Buffer.from((await this.redis.get(TICKET_KEY)) ?? '', 'base64');
  }

  attach(local: LocalNode): void {
    this.local = local;
    this.timer = setInterval(() => void this.heartbeat(), this.options.cluster.heartbeatMs);
    this.timer.unref();
    void this.heartbeat();
  }

  changed(): void {
    if (this.soon || !this.timer) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.heartbeat();
    }, 50);
    this.soon.unref();
  }

  async place(name: string): Promise<Placement> {
    if (this.local?.has(name)) return { kind: 'here' };
    const owner = await this.ownerOf(name);
    if (owner) return { kind: 'taken', node: owner };
    const me = this.entry();
    if (hasRoom(me)) return { kind: 'here' };
    const others = (await this.liveNodes()).filter((n) => n.id !== this.nodeId);
    const best = chooseNode(others);
    return best ? { kind: 'elsewhere', node: strip(best) } : { kind: 'full', reason: fullReason(me) };
  }

  async claim(name: string): Promise<void> {
    const taken = await this.run(async () => {
      if ((await this.redis.set(ownerKey(name), this.me, 'PX', this.ttlMs, 'NX')) === 'OK') return undefined;
      const holder = await this.redis.get(ownerKey(name));
      return holder === this.me ? undefined : (holder ?? '?').split(' ')[0];
    });
    if (taken !== undefined) throw new NameTaken(taken);
    this.owned.add(name);
    this.changed();
  }

  release(name: string): void {
    this.owned.delete(name);
    this.redis.eval(RELEASE_NAME, 1, ownerKey(name), this.me).catch(() => undefined); // expires by itself otherwise
    this.changed();
  }

  async ownerOf(name: string): Promise<NodeEntry | undefined> {
    const holder = await this.run(() => this.redis.get(ownerKey(name)));
    if (!holder) return undefined;
    const [id, instance] = holder.split(' ');
    if (id === this.nodeId) return undefined;
    // A name whose node has gone (or restarted: another instance) is nobody's: it expires soon.
    const node = (await this.liveNodes()).find((n) => n.id === id && n.instance === instance);
    return node && strip(node);
  }

  async nodes(): Promise<NodeView[]> {
    const now = Date.now();
    const [seen, entries] = await this.run(async () => {
      const flat = await this.redis.zrange(NODES, 0, -1, 'WITHSCORES');
      const ids = flat.filter((_, i) => i % 2 === 0);
      const values = ids.length ? await this.redis.mget(ids.map(nodeKey)) : [];
      return [new Map(ids.map((id, i) => [id, Number(flat[i * 2 + 1])])), values] as const;
    });
    const views: NodeView[] = [];
    let i = 0;
    for (const [id, at] of seen) {
      const text = entries[i++];
      const entry = text ? (JSON.parse(text) as StoredEntry) : undefined;
      const base: NodeEntry = entry ? strip(entry) : { id, url: `http://${id}`, version: '', startedAt: '', sessions: 0, maxSessions: 0, cpuPercent: 0, maxCpuPercent: 0, streams: [] };
      if (!entry && now - at > GONE_KEPT_MS) continue;
      views.push({ ...base, streams: entry ? base.streams : [], state: entry ? 'up' : 'gone', self: id === this.nodeId, seenAt: new Date(at).toISOString() });
    }
    return views;
  }

  /** Remembers a stream's REST-started outputs where any node finds them (streams.resumeOutputsSeconds). */
  saveOutputs(name: string, outputs: [string, { type: string; params: Record<string, unknown> }][], keepSeconds: number): void {
    if (!outputs.length) {
      this.resumable.delete(name);
      this.redis.del(resumeKey(name)).catch(() => undefined);
      return;
    }
    const ms = this.ttlMs + keepSeconds * 1000;
    this.resumable.set(name, ms);
    this.redis.set(resumeKey(name), JSON.stringify(outputs), 'PX', ms).catch(() => undefined);
  }

  /** The outputs a stream had on any node, taken (once) for its returning publisher. */
  async takeOutputs(name: string): Promise<[string, { type: string; params: Record<string, unknown> }][] | undefined> {
    const text = await this.redis.getdel(resumeKey(name)).catch(() => null);
    return text ? (JSON.parse(text) as [string, { type: string; params: Record<string, unknown> }][]) : undefined;
  }

  /** The stream ended here: its outputs wait (if at all) for their TTL, no longer refreshed. */
  forgetOutputs(name: string, drop: boolean): void {
    this.resumable.delete(name);
    if (drop) this.redis.del(resumeKey(name)).catch(() => undefined);
  }

  /** SIGTERM: the entry and the names go at once, so no one is sent here any more. */
  async leave(): Promise<void> {
    this.left = true;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.timer = undefined;
    await this.run(async () => {
      const m = this.redis.multi().del(nodeKey(this.nodeId)).zadd(NODES, Date.now(), this.nodeId);
      for (const name of this.owned) m.eval(RELEASE_NAME, 1, ownerKey(name), this.me);
      await m.exec();
    }).catch(() => undefined);
    this.owned.clear();
  }

  async close(): Promise<void> {
    if (!this.left) await this.leave();
    await Promise.allSettled([this.redis.quit(), this.sub.quit()]);
  }

  /** Writes this node's entry, refreshes its names and kept outputs. */
  private async heartbeat(): Promise<void> {
    if (!this.up || this.left || !this.local) return;
    this.cpu.sample();
    const entry: StoredEntry = { ...this.entry(), instance: this.instance };
    const now = Date.now();
    try {
      const m = this.redis
        .multi()
        .set(nodeKey(this.nodeId), JSON.stringify(entry), 'PX', this.ttlMs)
        .zadd(NODES, now, this.nodeId)
        .zremrangebyscore(NODES, '-inf', now - GONE_KEPT_MS);
      const names = [...this.owned];
      if (names.length) m.eval(REFRESH_NAMES, names.length, ...names.map(ownerKey), this.me, this.ttlMs);
      for (const [name, ms] of this.resumable) m.pexpire(resumeKey(name), ms);
      const results = await m.exec();
      const lost = names.length ? (results?.[3]?.[1] as string[] | undefined) : undefined;
      for (const key of lost ?? []) this.options.log.error({ event: 'cluster-name-conflict', key }, `another node took ${key} while Redis could not be reached: two publishers now use that name`);
      this.view = undefined;
    } catch {
      // down: logged once by the connection's events
    }
  }

  private entry(): NodeEntry {
    const { maxSessions, maxCpuPercent, nodeUrl } = this.options.cluster;
    return {
      id: this.nodeId,
      url: nodeUrl.replace(/\/+$/, ''),
      version: this.options.version,
      startedAt: this.startedAt,
      sessions: this.local?.sessions() ?? 0,
      maxSessions,
      cpuPercent: this.cpu.cpuPercent,
      maxCpuPercent,
      streams: this.local?.streams() ?? [],
    };
  }

  /** The entries of the nodes that are up (read at most every VIEW_MS). */
  private liveNodes(): Promise<StoredEntry[]> {
    if (!this.view || Date.now() - this.view.at > VIEW_MS) {
      const nodes = this.run(async () => {
        const ids = await this.redis.zrange(NODES, 0, -1);
        const values = ids.length ? await this.redis.mget(ids.map(nodeKey)) : [];
        return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as StoredEntry);
      });
      this.view = { at: Date.now(), nodes };
      nodes.catch(() => (this.view = undefined));
    }
    return this.view.nodes;
  }

  /** Runs Redis commands; any failure while Redis is unreachable is ClusterUnavailable. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.up) throw new ClusterUnavailable(`the cluster's directory (Redis at ${redactUrl(this.options.cluster.redis)}) cannot be reached`);
    try {
      return await fn();
    } catch (e) {
      throw new ClusterUnavailable(`the cluster's directory (Redis at ${redactUrl(this.options.cluster.redis)}) did not answer: ${(e as Error).message}`);
    }
  }
}

/** An entry without its process id. */
function strip(e: StoredEntry | NodeEntry): NodeEntry {
  const { instance: _instance, ...rest } = e as StoredEntry;
  return rest;
}

/** The Redis URL without its password, for logs and answers. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}
