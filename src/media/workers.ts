import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import { SdpError } from '../sdp/offer.js';
import { AnswerUnavailable, OfferNotAnswerable } from '../webrtc/publisher-peer.js';
import { ICE_UPDATE_REFUSALS, IceUpdateRefused, type IceUpdateRefusalCode } from '../webrtc/ice-update-refused.js';
import type { Command, FromWorker, ReplyTo, Request, WireError, WorkerSetup } from './worker-messages.js';
import { SessionHandle, type WorkerLink } from './session-handle.js';

// The media plane: `media.workers` worker threads (one per core by default), each owning
// the werift peers, ICE sockets and RTP forwarding of the sessions placed on it. A new
// session goes to the worker with the fewest sessions. A worker that dies takes only its
// own sessions with it: they are told ('lost'), the worker is started again, and the
// other workers' streams go on.

export interface MediaWorkersOptions {
  count: number;
  logLevel: string;
  log: Logger;
  /** How often workers report stats (default 1 s). */
  statsIntervalMs?: number;
  /** How far back each track keeps whole GOPs for outputs that start with a backlog (mpegtsHttp.probeBacklogSeconds). */
  historySeconds?: number;
}

export interface WorkerInfo {
  index: number;
  /** False while it is being started again after a crash. */
  running: boolean;
  sessions: number;
  /** Event-loop utilisation of the worker over its last report (0-1). */
  load: number;
  restarts: number;
}

export interface MediaWorkersEvents {
  /** A worker stopped unexpectedly with this many sessions. */
  crashed: [index: number, sessions: number, reason: string];
}

/** The worker's entry: the compiled file, or under a TypeScript runner (tests) the source through tsx. */
function workerEntry(): { url: URL; execArgv?: string[] } {
  if (import.meta.url.endsWith('.ts')) return { url: new URL('./worker.ts', import.meta.url), execArgv: ['--import', 'tsx'] };
  return { url: new URL('./worker.js', import.meta.url) };
}

const RESTART_DELAY_MS = 500;
/** Longer than an answer may take (ICE gathering waits up to 10 s). */
const REQUEST_TIMEOUT_MS = 15_000;

class Slot implements WorkerLink {
  worker!: Worker;
  ready!: Promise<void>;
  readonly sessions = new Map<string, SessionHandle>();
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextRequest = 1;
  private feedIds = 1;
  load = 0;
  restarts = 0;
  up = false;
  private stopping = false;

  constructor(
    readonly index: number,
    private readonly options: MediaWorkersOptions,
    private readonly onCrash: (slot: Slot, sessions: number, reason: string) => void,
  ) {
    this.spawn();
  }

  private spawn(): void {
    const entry = workerEntry();
    const setup: WorkerSetup = { index: this.index, logLevel: this.options.logLevel, statsIntervalMs: this.options.statsIntervalMs ?? 1000, historySeconds: this.options.historySeconds ?? 0 };
    const worker = new Worker(entry.url, { workerData: setup, ...(entry.execArgv ? { execArgv: entry.execArgv } : {}) });
    this.worker = worker;
    let lastError: Error | undefined;
    this.ready = new Promise((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (m.op === 'ready') {
          this.up = true;
          resolve();
        } else this.dispatch(m);
      });
      worker.on('error', (e: unknown) => {
        lastError = e instanceof Error ? e : new Error(String(e));
        reject(lastError);
      });
      worker.on('exit', (code) => {
        this.up = false;
        if (this.stopping) return;
        const reason = `media worker ${this.index} stopped (${lastError ? lastError.message : `exit code ${code}`})`;
        this.lost(reason);
        reject(new Error(reason));
        this.restarts++;
        setTimeout(() => !this.stopping && this.spawn(), RESTART_DELAY_MS).unref();
      });
    });
    this.ready.catch(() => undefined);
  }

  /** Every session and request of a worker that went away ends with it. */
  private lost(reason: string): void {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const p of this.pending.values()) p.reject(new AnswerUnavailable(reason));
    this.pending.clear();
    this.onCrash(this, sessions.length, reason);
    for (const s of sessions) s.onLost(reason);
  }

  private dispatch(m: FromWorker): void {
    switch (m.op) {
      case 'reply': {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.ok) p?.resolve(m.value);
        else p?.reject(fromWire(m.error));
        return;
      }
      case 'state':
        return this.sessions.get(m.session)?.onState(m.state, m.pair);
      case 'candidate':
        return this.sessions.get(m.session)?.onCandidate(m.candidate);
      case 'ice-restarting':
        return this.sessions.get(m.session)?.onIceRestarting();
      case 'parameter-sets':
        return void this.sessions.get(m.session)?.emit('parameter-sets', m.track, m.sets);
      case 'flowing':
        for (const s of this.sessions.values()) s.feeds.get(m.feed)?.markFlowing();
        return;
      case 'stats':
        this.load = m.load;
        for (const stats of m.sessions) this.sessions.get(stats.session)?.onStats(stats);
        for (const v of m.viewers) this.sessions.get(v.session)?.viewers.get(v.viewer)?.onStats(v);
        return;
      case 'viewer-state':
        for (const s of this.sessions.values()) s.viewers.get(m.viewer)?.onState(m.state);
        return;
    }
  }

  /**
   * Sends a request; resolves with the worker's reply to it. The reply's type is the
   * protocol's (worker-messages.ts Replies; the worker's side is typed the same way):
   * what crosses the thread is structured-cloned, so this is the one place that says so.
   */
  request<R extends Request>(r: R): Promise<ReplyTo<R>> {
    if (!this.up) return Promise.reject(new AnswerUnavailable(`media worker ${this.index} is restarting`));
    const id = this.nextRequest++;
    return new Promise<ReplyTo<R>>((resolve, reject) => {
      // A worker stuck in a loop must not hold a stream's close (or the gateway's stop) forever.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AnswerUnavailable(`media worker ${this.index} did not answer "${r.op}" within ${REQUEST_TIMEOUT_MS / 1000} s`));
      }, REQUEST_TIMEOUT_MS);
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        clearTimeout(timer);
        f(v);
      };
      this.pending.set(id, { resolve: settle((v) => resolve(v as ReplyTo<R>)), reject: settle(reject) });
      this.worker.postMessage({ ...r, id });
    });
  }

  command(c: Command): void {
    if (this.up) this.worker.postMessage(c);
  }

  nextFeedId(): number {
    return this.feedIds++;
  }

  forget(session: string): void {
    this.sessions.delete(session);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.worker.terminate();
  }
}

export class MediaWorkers extends EventEmitter<MediaWorkersEvents> {
  private readonly slots: Slot[];

  private constructor(options: MediaWorkersOptions) {
    super();
    this.slots = Array.from({ length: options.count }, (_, i) => new Slot(i, options, (slot, sessions, reason) => this.emit('crashed', slot.index, sessions, reason)));
  }

  /** Starts the workers; resolves when every one is ready to take sessions. */
  static async start(options: MediaWorkersOptions): Promise<MediaWorkers> {
    const workers = new MediaWorkers(options);
    try {
      await Promise.all(workers.slots.map((s) => s.ready));
    } catch (e) {
      await workers.stop();
      throw e;
    }
    return workers;
  }

  /** Answers an offer on the least-loaded worker (fewest sessions, then the lowest load). */
  async answer(req: Omit<Extract<Request, { op: 'answer' }>, 'op'>): Promise<{ handle: SessionHandle; answer: string }> {
    const slot = this.leastLoaded();
    if (!slot) throw new AnswerUnavailable('no media worker is running (they are restarting)');
    // Registered before the answer: candidates the worker sends with it are kept, and
    // offers answered at the same time spread over the workers.
    const handle = new SessionHandle(req.session, slot);
    slot.sessions.set(req.session, handle);
    try {
      const result = await slot.request({ op: 'answer', ...req });
      handle.codecs = result.tracks;
      handle.ignored = result.ignored;
      return { handle, answer: result.answer };
    } catch (e) {
      slot.sessions.delete(req.session);
      throw e;
    }
  }

  /**
   * A session without a peer (a composite's, whose tracks the gateway feeds itself) on the
   * least-loaded worker: live at once, its tracks added with addLocalTrack.
   */
  async localSession(session: string, stream: string): Promise<SessionHandle> {
    const slot = this.leastLoaded();
    if (!slot) throw new AnswerUnavailable('no media worker is running (they are restarting)');
    const handle = new SessionHandle(session, slot);
    slot.sessions.set(session, handle);
    try {
      await slot.request({ op: 'local-session', session, stream });
    } catch (e) {
      slot.sessions.delete(session);
      throw e;
    }
    handle.connectionState = 'connected';
    return handle;
  }

  private leastLoaded(): Slot | undefined {
    const up = this.slots.filter((s) => s.up);
    return up.sort((a, b) => a.sessions.size - b.sessions.size || a.load - b.load || a.index - b.index)[0];
  }

  info(): WorkerInfo[] {
    return this.slots.map((s) => ({ index: s.index, running: s.up, sessions: s.sessions.size, load: s.load, restarts: s.restarts }));
  }

  /** Ends a worker as a crash would (operators and tests: what happens to its sessions). */
  async terminate(index: number): Promise<void> {
    await this.slots[index]?.worker.terminate();
  }

  async stop(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.stop()));
  }
}

function fromWire(e: WireError): Error {
  if (e.name === 'SdpError') return new SdpError(e.status === 406 ? 406 : 400, e.message);
  if (e.name === 'OfferNotAnswerable') return new OfferNotAnswerable(e.detail ?? e.message);
  if (e.name === 'AnswerUnavailable') return new AnswerUnavailable(e.message);
  if (e.name === 'IceUpdateRefused' && e.code !== undefined && e.code in ICE_UPDATE_REFUSALS) return new IceUpdateRefused(e.code as IceUpdateRefusalCode, e.message);
  return new Error(e.message);
}
