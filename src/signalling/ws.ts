import type http from 'node:http';
import type https from 'node:https';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { refuseSocket, type ConnectionLimits } from '../http/limits.js';
import { streamFor } from '../http/stream-view.js';
import type { Authorizer } from '../auth/authorizer.js';
import { OPEN, type Action, type Grant } from '../auth/permissions.js';
import type { EventBus, GatewayEvent } from '../events/bus.js';
import type { Logger } from '../log.js';
import { iceUpdateOfOffer } from '../sdp/ice-fragment.js';
import { SdpError } from '../sdp/offer.js';
import { PublishRefused } from '../streams/publish-refused.js';
import { IceUpdateRefused } from '../webrtc/ice-update-refused.js';
import type { StreamRegistry } from '../streams/registry.js';
import type { Stream } from '../streams/stream.js';
import type { CandidateInit } from '../webrtc/publisher-peer.js';
import { clientMessage, type ClientMessage, type ErrorCode, type ServerMessage } from './protocol.js';

// WebSocket signalling for the built-in pages: publish with trickle ICE both ways, ICE
// restarts, and a live feed of events and stream stats for the dashboard. A malformed
// message gets an error reply and nothing else; a closed socket ends the session it
// published, unless another connection has taken that session over with a restart (a
// publisher whose network changed lost its WebSocket with it, and signals on a new one).
//
// Credentials (when auth is on): browsers cannot set headers on a WebSocket, so the token
// comes as a subprotocol, `new WebSocket(url, ['webrtc-rtp-gateway', 'token.' +
// base64url(token)])` (the gateway answers with the first), or as the first message,
// {type: "auth", token}. publish needs the publish right for the stream; subscribe needs
// read, and then sees only the streams the token may read.

const PING_INTERVAL_MS = 15_000;
const STATS_INTERVAL_MS = 1000;
const MAX_MESSAGE_BYTES = 256 * 1024;
export const WS_PROTOCOL = 'webrtc-rtp-gateway';
const TOKEN_PROTOCOL = 'token.';
/** The connection that signals for each session (the one that published it, or the last that restarted its ICE). */
const owners = new WeakMap<Stream, Connection>();

/** The token a client put in its Sec-WebSocket-Protocol list, if any. */
export function tokenFromProtocols(protocols: Iterable<string>): string | undefined {
  for (const p of protocols) if (p.startsWith(TOKEN_PROTOCOL)) return Buffer.from(p.slice(TOKEN_PROTOCOL.length), 'base64url').toString('utf8') || undefined;
  return undefined;
}

/** What signalling uses: the streams, the event feed, who may do what, and how many may connect. */
export interface SignallingServices {
  registry: StreamRegistry;
  events: EventBus;
  authorizer: Authorizer;
  limits: ConnectionLimits;
  /** Origins whose pages may open /ws (http.corsOrigins); the gateway's own pages always may. */
  origins: string[];
  /** With auth on: a connection with no valid credential after this long is closed. */
  authTimeoutMs: number;
}

/** Whether a page from `origin` may open a WebSocket here (no Origin: not a browser, nothing to check). */
export function originAllowed(origin: string | undefined, host: string | undefined, origins: string[]): boolean {
  if (!origin || origins.includes('*') || origins.includes(origin)) return true;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

export function attachSignalling(server: http.Server | https.Server, services: SignallingServices, log: Logger): WebSocketServer {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE_BYTES,
    // Answer with a protocol that is not the token, so the token is not echoed back.
    handleProtocols: (protocols) => (protocols.has(WS_PROTOCOL) ? WS_PROTOCOL : [...protocols].find((p) => !p.startsWith(TOKEN_PROTOCOL)) ?? false),
  });
  wss.on('error', () => undefined);
  // Upgrades are taken here rather than by the WebSocketServer itself, so that one from a
  // page of another origin (browsers send Origin on WebSockets, and CORS does not apply to
  // them) or past the connection caps is refused with an HTTP answer before it is accepted.
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/ws') return refuseSocket(socket, { status: 404, reason: `no WebSocket at ${path}` });
    if (!originAllowed(req.headers.origin, req.headers.host, services.origins)) {
      log.warn({ event: 'ws-origin-refused', origin: req.headers.origin, ip: req.socket.remoteAddress }, 'WebSocket from an origin not in http.corsOrigins refused');
      return refuseSocket(socket, { status: 403, reason: `origin ${req.headers.origin} may not open the gateway's WebSocket (http.corsOrigins)` });
    }
    const admitted = services.limits.admit('websockets', req.socket.remoteAddress);
    if (!admitted.ok) return refuseSocket(socket, admitted);
    socket.once('close', admitted.release);
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    new Connection(ws, services, log, req.socket.remoteAddress, tokenFromProtocols(protocols));
  });
  const ping = setInterval(() => {
    for (const ws of wss.clients) {
      const alive = (ws as WebSocket & { alive?: boolean }).alive;
      if (alive === false) {
        ws.terminate(); // no pong since the last ping: the peer is gone
        continue;
      }
      (ws as WebSocket & { alive?: boolean }).alive = false;
      ws.ping();
    }
  }, PING_INTERVAL_MS);
  ping.unref();
  wss.on('close', () => clearInterval(ping));
  return wss;
}

class Connection {
  private stream: Stream | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  /** True while a publish offer or a restart is being answered; candidates meanwhile wait in `early`. */
  private publishing = false;
  private restarting = false;
  private readonly early: (CandidateInit | null)[] = [];
  /** What a subscriber may see (set by subscribe). */
  private readGrant: Grant = OPEN;
  /** A credential of this connection has been accepted (or none is needed). */
  private authenticated: boolean;
  private authTimer: NodeJS.Timeout | undefined;
  private readonly onEvent = (event: GatewayEvent) => {
    if (this.readGrant.allows('read', event.stream)) this.send({ type: 'event', event });
  };

  constructor(
    private readonly ws: WebSocket,
    private readonly services: SignallingServices,
    private readonly log: Logger,
    /** The client's address. */
    private readonly from: string | undefined,
    private token: string | undefined,
  ) {
    (ws as WebSocket & { alive?: boolean }).alive = true;
    this.authenticated = !services.authorizer.enabled;
    if (!this.authenticated) {
      // An idle socket costs the gateway a file descriptor: with auth on, one that shows no
      // valid credential soon (subprotocol, auth message, or an allowed request) is closed.
      this.authTimer = setTimeout(() => {
        if (!this.authenticated) ws.close(4401, `no valid credentials within ${services.authTimeoutMs} ms`);
      }, services.authTimeoutMs);
      if (token) void this.recognise();
    }
    ws.on('pong', () => ((ws as WebSocket & { alive?: boolean }).alive = true));
    ws.on('message', (data, isBinary) => void this.onMessage(isBinary ? '' : data.toString()));
    ws.on('close', () => this.onClose());
    ws.on('error', () => undefined);
  }

  private send(msg: ServerMessage): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(msg));
  }

  private error(code: ErrorCode, message: string, retryAfterSeconds?: number): void {
    this.send({ type: 'error', code, message, ...(retryAfterSeconds ? { retryAfterSeconds } : {}) });
  }

  private async onMessage(text: string): Promise<void> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return this.error('bad-message', 'message is not JSON');
    }
    const parsed = clientMessage.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return this.error('bad-message', `${issue.path.join('.') || 'message'}: ${issue.message}`);
    }
    const msg = parsed.data;
    try {
      switch (msg.type) {
        case 'auth':
          this.token = msg.token;
          return await this.recognise();
        case 'publish':
          return await this.publish(msg.stream, msg.sdp);
        case 'candidate': {
          const c = msg.candidate
            ? { candidate: msg.candidate.candidate, sdpMid: msg.candidate.sdpMid ?? undefined, sdpMLineIndex: msg.candidate.sdpMLineIndex ?? undefined, usernameFragment: msg.candidate.usernameFragment ?? undefined }
            : null;
          // Candidates trickled while the offer (or a restart) is being answered wait for the peer.
          if (this.publishing || this.restarting) return void this.early.push(c);
          if (!this.stream) return this.error('not-publishing', 'send "publish" before candidates');
          // A candidate werift cannot use is the client's mistake: an error reply, no log
          // line (one per candidate would flood the log).
          return await this.stream.addRemoteCandidate(c).catch(() => this.error('bad-message', 'candidate: not an ICE candidate the gateway can use'));
        }
        case 'restart':
          return await this.restart(msg);
        case 'unpublish':
          if (!this.stream) return this.error('not-publishing', 'nothing is being published on this connection');
          return void (await this.stream.close('left'));
        case 'subscribe': {
          const grant = await this.allowed('read');
          return grant ? this.subscribe(msg.stats, grant) : undefined;
        }
        case 'unsubscribe':
          return this.unsubscribe();
        case 'ping':
          return this.send({ type: 'pong' });
        case 'sender-stats': {
          const own = this.stream && !this.stream.closed ? this.stream : undefined;
          const named = msg.stream !== undefined ? this.services.registry.get(msg.stream) : undefined;
          const stream = own ?? (named && named.sessionId === msg.session ? named : undefined);
          if (stream && stream !== own && !(await this.allowed('publish', stream.name))) return;
          if (!stream) return this.error('not-publishing', 'sender-stats needs the stream this connection publishes, or a live stream and its session id');
          return stream.reportSender(msg.stats);
        }
      }
    } catch (e) {
      this.log.warn({ event: 'ws-error', type: msg.type, error: (e as Error).message }, 'signalling message failed');
      this.error('internal', `the gateway could not handle this ${msg.type} message`);
    }
  }

  /** Marks the connection authenticated when its token is one the gateway knows (static or JWT). */
  private async recognise(): Promise<void> {
    if (this.authenticated || !(await this.services.authorizer.recognises(this.token, this.from ?? ''))) return;
    this.authenticated = true;
    clearTimeout(this.authTimer);
  }

  /** The grant when this connection's token allows the action; otherwise replies with the reason. */
  private async allowed(action: Action, stream?: string): Promise<Grant | undefined> {
    const d = await this.services.authorizer.check({ action, stream, token: this.token, ip: this.from ?? '' });
    if (d.ok) {
      this.authenticated = true;
      clearTimeout(this.authTimer);
      return d.grant;
    }
    this.error(d.status === 401 ? 'unauthorized' : d.status === 403 ? 'forbidden' : 'rate-limited', d.reason);
    return undefined;
  }

  private async publish(name: string, sdp: string): Promise<void> {
    if (this.stream && !this.stream.closed) return this.error('already-publishing', `this connection already publishes ${this.stream.name}`);
    this.publishing = true; // before the credential check: candidates may follow the offer at once
    try {
      if (!(await this.allowed('publish', name))) return;
      const elsewhere = await this.services.registry.placement(name);
      if (elsewhere) return this.send({ type: 'redirect', stream: name, url: elsewhere });
      const { stream, answer } = await this.services.registry.publish(name, sdp, { trickle: true, from: this.from });
      for (const c of this.early.splice(0)) await stream.addRemoteCandidate(c);
      this.send({ type: 'answer', stream: name, session: stream.sessionId, sdp: answer });
      this.adopt(stream);
    } catch (e) {
      if (e instanceof PublishRefused) return this.error(e.code, e.message, e.retryAfterSeconds);
      throw e;
    } finally {
      this.publishing = false;
      this.early.length = 0;
    }
  }

  /**
   * This connection signals for `stream` from now on: the gateway's candidates (those
   * gathered so far at once), its state, its end. The connection that did before stops.
   */
  private adopt(stream: Stream): void {
    this.stream = stream;
    owners.set(stream, this);
    const mine = () => owners.get(stream) === this;
    for (const c of stream.media.localCandidates) this.send({ type: 'candidate', candidate: c });
    if (stream.media.gatheringComplete) this.send({ type: 'candidate', candidate: null });
    stream.media.on('candidate', (c) => mine() && !this.restarting && this.send({ type: 'candidate', candidate: c }));
    stream.media.on('state', (state) => mine() && this.send({ type: 'state', state }));
    stream.once('closed', ({ reason }) => mine() && this.send({ type: 'unpublished', stream: stream.name, reason }));
  }

  /**
   * An ICE restart: a new offer (new credentials) for the session this connection
   * publishes, or for `stream`/`session` when it comes on a new connection (the old one
   * went down with the network), which then takes the session over. The answer comes at
   * once, the gateway's new candidates follow; only ICE is renegotiated.
   */
  private async restart(msg: Extract<ClientMessage, { type: 'restart' }>): Promise<void> {
    let stream = this.stream && !this.stream.closed ? this.stream : undefined;
    if (!stream || (msg.stream !== undefined && msg.stream !== stream.name)) {
      const named = msg.stream !== undefined ? this.services.registry.get(msg.stream) : undefined;
      if (!named || named.closed || named.sessionId !== msg.session) return this.error('not-publishing', 'restart needs the stream this connection publishes, or a live stream and its session id');
      if (!(await this.allowed('publish', named.name))) return;
      stream = named;
    }
    let update;
    try {
      update = iceUpdateOfOffer(msg.sdp);
    } catch (e) {
      if (e instanceof SdpError) return this.error('bad-sdp', e.message);
      throw e;
    }
    this.restarting = true;
    try {
      const { answer } = await stream.updateIce(update, { trickle: true, mids: update.mids });
      this.send({ type: 'answer', stream: stream.name, session: stream.sessionId, sdp: answer ?? '' });
      this.restarting = false;
      if (stream === this.stream) {
        for (const c of stream.media.localCandidates) this.send({ type: 'candidate', candidate: c });
        if (stream.media.gatheringComplete) this.send({ type: 'candidate', candidate: null });
      } else this.adopt(stream);
      for (const c of this.early.splice(0)) await stream.addRemoteCandidate(c).catch(() => undefined);
    } catch (e) {
      if (e instanceof IceUpdateRefused) return this.error(e.code, e.message);
      throw e;
    } finally {
      this.restarting = false;
      this.early.length = 0;
    }
  }

  private subscribe(stats: boolean, grant: Grant): void {
    this.unsubscribe();
    this.readGrant = grant;
    this.services.events.on('event', this.onEvent);
    if (stats) {
      const tick = () => this.send({ type: 'streams', streams: this.services.registry.list().filter((s) => grant.allows('read', s.name)).map((s) => streamFor(s, grant)) });
      tick();
      this.statsTimer = setInterval(tick, STATS_INTERVAL_MS);
    }
  }

  private unsubscribe(): void {
    this.services.events.off('event', this.onEvent);
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = undefined;
  }

  private onClose(): void {
    clearTimeout(this.authTimer);
    this.unsubscribe();
    if (this.stream && !this.stream.closed && owners.get(this.stream) === this) void this.stream.close('left', 'its signalling connection closed');
  }
}
