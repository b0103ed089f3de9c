import { createHash } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import type { Config } from '../config/schema.js';
import { MAX_PATTERN_LENGTH } from '../config/wildcard.js';
import { authEnabled } from './policy.js';
import type { Logger } from '../log.js';
import { FailureLimiter } from './failures.js';
import { ACTIONS, grantOf, OPEN, type Action, type Grant, type Permission } from './permissions.js';

// Who may do what. Credentials, tried in this order:
// 1. static tokens from the configuration, each with its permissions;
// 2. JWTs signed with a shared secret (HS256) or a key from a JWKS URL, carrying their
//    permissions in a claim (`permissions`, or MediaMTX's {action, path} entries);
// 3. an HTTP hook: POST {action, stream, ip, token}; a 2xx answer allows that one action
//    (cached briefly, so a player polling its playlist does not call it every second).
// No token is 401, a token nobody knows is 401, a known token without the right is 403.
// Bad credentials are counted per address: too many in a minute get 429.

export interface AccessRequest {
  action: Action;
  stream?: string;
  token?: string;
  ip: string;
}

export type Decision = { ok: true; grant: Grant } | { ok: false; status: 401 | 403 | 429; reason: string; retryAfterSeconds?: number };

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** What a JWKS key may sign with: asymmetric algorithms only (a JWKS never holds the HMAC secret). */
const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export class Authorizer {
  readonly enabled: boolean;
  /** sha256(token) -> permissions: a lookup that does not compare the secret itself. */
  private readonly tokens = new Map<string, Permission[]>();
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  private readonly limiter: FailureLimiter;
  /** Verified JWTs (by hash) until they expire, at most a minute: a player polls its playlist every second. */
  private readonly jwtCache = new Map<string, { permissions: Permission[]; until: number }>();
  private readonly hookCache = new Map<string, { ok: boolean; status?: number; why: string; until: number }>();
  private readonly auth: Config['auth'];

  constructor(
    config: Config,
    private readonly log: Logger,
  ) {
    this.auth = config.auth;
    this.enabled = authEnabled(config);
    for (const t of config.auth.tokens) this.tokens.set(sha256(t.token), t.permissions);
    this.jwks = config.auth.jwt?.jwksUrl ? createRemoteJWKSet(new URL(config.auth.jwt.jwksUrl)) : undefined;
    this.limiter = new FailureLimiter(config.auth.maxFailures, config.auth.failureWindowSeconds * 1000);
  }

  async check(req: AccessRequest): Promise<Decision> {
    if (!this.enabled) return { ok: true, grant: OPEN };
    const wait = this.limiter.retryAfterMs(req.ip);
    if (wait > 0) return { ok: false, status: 429, reason: `too many failed attempts from ${req.ip}: wait ${Math.ceil(wait / 1000)} s`, retryAfterSeconds: Math.ceil(wait / 1000) };
    // No credential at all is not counted as a failure: a page or player that has not been
    // given its token yet would otherwise lock its whole address out (valid tokens too).
    if (!req.token) return this.refuse(req, 401, 'credentials required: send Authorization: Bearer <token> (players: ?token=<token>)');
    const found = this.tokens.get(sha256(req.token)) ?? (await this.fromJwt(req));
    if (found instanceof Error) return this.fail(req, 401, `invalid token: ${found.message}`);
    if (found) {
      const grant = grantOf(found);
      return grant.allows(req.action, req.stream) ? { ok: true, grant } : this.fail(req, 403, `this token does not have the ${req.action} right${req.stream ? ` for stream ${req.stream}` : ''}`);
    }
    if (this.auth.hook) return this.fromHook(req);
    return this.fail(req, 401, 'invalid token');
  }

  /**
   * Whether `token` is a static token or a JWT that verifies (whatever it allows): a /ws
   * connection must show one soon after it opens. A token only the hook knows counts once
   * one of its requests is allowed.
   */
  async recognises(token: string | undefined, ip: string): Promise<boolean> {
    if (!this.enabled) return true;
    if (!token) return false;
    if (this.tokens.has(sha256(token))) return true;
    const jwt = await this.fromJwt({ action: 'read', token, ip });
    if (jwt instanceof Error) this.limiter.fail(ip);
    return Array.isArray(jwt);
  }

  /** Permissions from a JWT, an Error when it is a JWT that does not verify, undefined when it is not one. */
  private async fromJwt(req: AccessRequest): Promise<Permission[] | Error | undefined> {
    const jwt = this.auth.jwt;
    if (!jwt || !/^[\w-]+\.[\w-]+\.[\w-]*$/.test(req.token ?? '')) return undefined;
    const key = sha256(req.token!);
    const cached = this.jwtCache.get(key);
    if (cached && cached.until > Date.now()) return cached.permissions;
    try {
      // Expiry is always required (a token without exp would be valid forever), and the
      // algorithm is the one configured: HS256 for a secret, asymmetric ones for a JWKS.
      const options = { issuer: jwt.issuer, audience: jwt.audience, requiredClaims: ['exp'] };
      const { payload } = this.jwks
        ? await jwtVerify(req.token!, this.jwks, { ...options, algorithms: JWKS_ALGORITHMS })
        : await jwtVerify(req.token!, new TextEncoder().encode(jwt.secret), { ...options, algorithms: ['HS256'] });
      const permissions = permissionsOf(payload, jwt.claim);
      if (!(permissions instanceof Error)) {
        if (this.jwtCache.size > 10_000) this.jwtCache.clear();
        this.jwtCache.set(key, { permissions, until: Math.min(Date.now() + 60_000, (payload.exp ?? Infinity) * 1000) });
      }
      return permissions;
    } catch (e) {
      return new Error((e as Error).message); // jose says which check failed ("missing required \"exp\" claim")
    }
  }

  private async fromHook(req: AccessRequest): Promise<Decision> {
    const hook = this.auth.hook!;
    const key = `${sha256(req.token ?? '')} ${req.action} ${req.stream ?? ''} ${req.ip}`;
    let verdict = this.hookCache.get(key);
    if (!verdict || verdict.until <= Date.now()) {
      verdict = { ...(await this.askHook(req)), until: Date.now() + hook.cacheSeconds * 1000 };
      if (this.hookCache.size > 10_000) this.hookCache.clear();
      this.hookCache.set(key, verdict);
    }
    if (verdict.ok) return { ok: true, grant: grantOf([{ action: req.action, streams: req.stream ?? '*' }]) };
    // The hook's 401 means it does not know the token; anything else refuses this action.
    // Either counts towards the failure limit: the hook is where guesses of its tokens end up.
    this.limiter.fail(req.ip);
    return this.refuse(req, verdict.status === 401 ? 401 : 403, `refused by the auth hook (${verdict.why})`);
  }

  private async askHook(req: AccessRequest): Promise<{ ok: boolean; status?: number; why: string }> {
    const hook = this.auth.hook!;
    try {
      const res = await fetch(hook.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ action: req.action, stream: req.stream ?? null, ip: req.ip, token: req.token ?? null }),
        signal: AbortSignal.timeout(hook.timeoutMs),
      });
      await res.body?.cancel();
      return { ok: res.ok, status: res.status, why: `status ${res.status}` };
    } catch (e) {
      this.log.warn({ event: 'auth-hook-error', url: hook.url, error: (e as Error).message }, 'auth hook did not answer');
      return { ok: false, why: (e as Error).name === 'TimeoutError' ? 'no answer in time' : 'unreachable' };
    }
  }

  /** A refusal; a 401 (a credential nobody knows) is counted towards the address' failure limit. */
  private fail(req: AccessRequest, status: 401 | 403, reason: string): Decision {
    if (status === 401) this.limiter.fail(req.ip);
    return this.refuse(req, status, reason);
  }

  /** A refusal, logged with the client's address. */
  private refuse(req: AccessRequest, status: 401 | 403, reason: string): Decision {
    this.log.warn({ event: 'access-denied', status, action: req.action, stream: req.stream, ip: req.ip, reason }, `access denied: ${reason}`);
    return { ok: false, status, reason };
  }
}

/**
 * Permissions in a JWT claim: [{action, streams}] or MediaMTX's [{action, path}]. An entry
 * that is not one (unknown action, a pattern longer than the configuration allows) is
 * ignored: the token keeps its other rights.
 */
function permissionsOf(payload: JWTPayload, claim: string): Permission[] | Error {
  const list = payload[claim];
  if (!Array.isArray(list)) return new Error(`no "${claim}" claim`);
  const out: Permission[] = [];
  for (const p of list as { action?: unknown; streams?: unknown; path?: unknown }[]) {
    if (!ACTIONS.includes(p?.action as Action)) continue;
    const streams = typeof p.streams === 'string' ? p.streams : typeof p.path === 'string' && p.path ? p.path : '*';
    if (streams.length > MAX_PATTERN_LENGTH) continue;
    out.push({ action: p.action as Action, streams });
  }
  return out;
}
