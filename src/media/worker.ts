import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../log.js';
import { AnswerUnavailable, OfferNotAnswerable } from '../webrtc/publisher-peer.js';
import { IceUpdateRefused } from '../webrtc/ice-update-refused.js';
import { SdpError } from '../sdp/offer.js';
import { installWeriftPatches } from '../werift/install.js';
import type { Feed } from './feed.js';
import type { FromWorker, ReplyTo, Request, ToWorker, WireError, WorkerSetup } from './worker-messages.js';
import { WorkerSession } from './worker-session.js';
import { ViewerSession } from './viewer-session.js';

// A media worker (node:worker_threads): the werift peers, ICE sockets and RTP forwarding
// of the sessions the main thread placed here. It does what the messages say and reports
// back (worker-messages.ts); the main thread owns everything else.

// This thread runs werift peers: what the gateway changes in werift (src/werift/install.ts).
installWeriftPatches();

const setup = workerData as WorkerSetup;
const port = parentPort!;
const log = createLogger(setup.logLevel).child({ worker: setup.index });
const sessions = new Map<string, WorkerSession>();
const feeds = new Map<number, { feed: Feed; session: WorkerSession }>();
/** WHEP viewers, by id (each next to the session it watches). */
const viewers = new Map<string, ViewerSession>();
const send = (m: FromWorker) => port.postMessage(m);

port.on('message', (msg: ToWorker) => {
  if ('id' in msg) void handleRequest(msg);
  else handleCommand(msg);
});

/** The reply to `msg`, typed by what its op answers (worker-messages.ts Replies). */
function reply<R extends Request>(msg: R & { id: number }, value: ReplyTo<R>): void {
  send({ op: 'reply', id: msg.id, ok: true, ...(value === undefined ? {} : { value }) });
}

async function handleRequest(msg: Request & { id: number }): Promise<void> {
  try {
    switch (msg.op) {
      case 'answer': {
        const { session, result } = await WorkerSession.answer(msg, send, log, setup.historySeconds * 1000);
        sessions.set(msg.session, session);
        return reply(msg, result);
      }
      case 'candidate':
        await sessions.get(msg.session)?.addRemoteCandidate(msg.candidate);
        return reply(msg, undefined);
      case 'ice-update': {
        const session = sessions.get(msg.session);
        if (!session) throw new IceUpdateRefused('session-ended', 'the session has ended');
        return reply(msg, await session.updateIce(msg.update, msg.trickle, msg.mids));
      }
      case 'local-track': {
        const session = sessions.get(msg.session);
        if (!session) throw new Error(`no media session ${msg.session}`);
        return reply(msg, await session.addLocalTrack(msg.codec, msg.latencyMs));
      }
      case 'local-session':
        sessions.set(msg.session, WorkerSession.local(msg.session, send, setup.historySeconds * 1000));
        return reply(msg, undefined);
      case 'close': {
        const session = sessions.get(msg.session);
        sessions.delete(msg.session);
        for (const [id, f] of feeds) if (f.session === session) feeds.delete(id);
        // Its viewers end with it (each is told: RTCP BYE, close_notify).
        await Promise.all([...viewers.values()].filter((v) => v.session === session).map((v) => closeViewer(v.id, 'the stream ended')));
        await session?.close();
        return reply(msg, undefined);
      }
      case 'viewer': {
        const session = sessions.get(msg.session);
        if (!session) throw new Error(`no media session ${msg.session}`);
        const { viewer, result } = await ViewerSession.answer(msg, session, send, log);
        if (!sessions.has(msg.session)) {
          await viewer.close('the stream ended');
          throw new Error(`media session ${msg.session} ended`);
        }
        viewers.set(msg.viewer, viewer);
        return reply(msg, result);
      }
      case 'viewer-ice': {
        const viewer = viewers.get(msg.viewer);
        if (!viewer) throw new IceUpdateRefused('session-ended', 'the viewer session has ended');
        return reply(msg, await viewer.updateIce(msg.update));
      }
      case 'viewer-close':
        await closeViewer(msg.viewer, msg.reason);
        return reply(msg, undefined);
    }
  } catch (e) {
    send({ op: 'reply', id: msg.id, ok: false, error: toWire(e) });
  }
}

function handleCommand(msg: Exclude<ToWorker, { id: number }>): void {
  switch (msg.op) {
    case 'keyframe':
      return sessions.get(msg.session)?.requestKeyframe();
    case 'announce-close': {
      const session = sessions.get(msg.session);
      // Its viewers end now too (they are told: RTCP BYE, close_notify), not after the outputs have finished their files.
      for (const v of viewers.values()) if (v.session === session) void closeViewer(v.id, msg.reason);
      return void session?.announceClose(msg.reason);
    }
    case 'feed': {
      const session = sessions.get(msg.session);
      if (session) feeds.set(msg.feed, { feed: session.openFeed(msg.feed, msg.targets, msg.encodes), session });
      return;
    }
    case 'feed-open':
      return feeds.get(msg.feed)?.feed.open(msg.keyframeIntervalSeconds, msg.backlogSeconds);
    case 'feed-drain':
      return feeds.get(msg.feed)?.feed.drain();
    case 'feed-close':
      feeds.get(msg.feed)?.session.closeFeed(msg.feed);
      feeds.delete(msg.feed);
      return;
  }
}

async function closeViewer(id: string, reason: string): Promise<void> {
  const viewer = viewers.get(id);
  viewers.delete(id);
  await viewer?.close(reason);
}

function toWire(e: unknown): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  if (err instanceof SdpError) return { name: 'SdpError', message: err.message, status: err.status };
  if (err instanceof OfferNotAnswerable) return { name: 'OfferNotAnswerable', message: err.message, detail: err.detail };
  if (err instanceof AnswerUnavailable) return { name: 'AnswerUnavailable', message: err.message };
  if (err instanceof IceUpdateRefused) return { name: 'IceUpdateRefused', message: err.message, code: err.code };
  return { name: 'Error', message: err.message };
}

let lastUtilization = performance.eventLoopUtilization();
setInterval(() => {
  const now = performance.eventLoopUtilization();
  const load = performance.eventLoopUtilization(now, lastUtilization).utilization;
  lastUtilization = now;
  send({ op: 'stats', load, sessions: [...sessions.values()].map((s) => s.stats()), viewers: [...viewers.values()].map((v) => v.stats()) });
}, setup.statsIntervalMs);

send({ op: 'ready' });
