import type { RTCPeerConnection } from 'werift';
import { withIce, type IceUpdate } from '../sdp/ice-fragment.js';
import { isMdnsName, MAX_CANDIDATES, parseCandidate } from '../sdp/offer.js';
import { restartForNewCredentials } from '../werift/ice-restart.js';
import { keepToConfiguredStun } from '../werift/stun-default.js';
import { IceUpdateRefused } from './ice-update-refused.js';
import type { IceServer } from './ice-servers.js';
import type { selectedPair } from './selected-pair.js';
import type { z } from 'zod';

// ICE after the answer, for any peer the gateway answers (a publisher's, publisher-peer.ts;
// a WHEP viewer's, viewer-peer.ts): candidates trickled by the remote end (WHIP/WHEP PATCH,
// WebSocket), and ICE restarts (new credentials: the peer re-offers, the gateway answers
// with new credentials and candidates; DTLS, SRTP and the media go on). One update at a
// time (a restart is several werift steps).

export interface CandidateInit {
  candidate: string;
  sdpMid?: string;
  sdpMLineIndex?: number;
  /** The ICE session (its ufrag) the candidate belongs to, as browsers send it. */
  usernameFragment?: string;
}

export interface IceUpdatesOptions {
  servers: IceServer[];
  /** The mids of the sections the session took (a candidate for another is refused). */
  mids: string[];
  /** The answer as the remote end gets it, from werift's local description. */
  shape: (local: string) => string;
  /** werift could not restart: the peer cannot go on. */
  failed: () => void;
  /** A restart begins: local candidates that follow are the new ICE session's. */
  restarting: () => void;
}

/** werift refused an offer or re-offer with an exception of its own (its message is `detail`). */
export class OfferNotAnswerable extends Error {
  constructor(readonly detail: string) {
    super('the offer could not be answered: a part of it (a candidate, a media section, an attribute) is malformed or not supported');
  }
}

export class IceUpdates {
  /** Remote ufrags of earlier ICE sessions: candidates for them are stale. */
  private readonly pastUfrags = new Set<string>();
  /** Candidates trickled in this ICE session. */
  private trickled = 0;
  /** ICE restarts so far. */
  restarts = 0;
  private queue: Promise<unknown> = Promise.resolve();
  closed = false;

  constructor(
    private readonly pc: RTCPeerConnection,
    /** The offer text werift answered (a restart re-offers it with new credentials). */
    private remoteOffer: string,
    private readonly options: IceUpdatesOptions,
  ) {}

  /**
   * A candidate from the remote end (trickle ICE); null or empty means end of candidates.
   * One of an earlier ICE session (a late one after a restart) is dropped, as is an mDNS
   * one (see withoutMdnsCandidates).
   */
  async addCandidate(c: CandidateInit | null): Promise<void> {
    if (this.closed || (c?.candidate && isMdnsName(parseCandidate(c.candidate)?.address ?? ''))) return;
    if (c?.usernameFragment && c.usernameFragment !== this.pc.iceTransports[0]?.connection.remoteUsername) return;
    await this.pc.addIceCandidate(c && c.candidate ? c : undefined);
  }

  /**
   * Trickled candidates or an ICE restart: new credentials restart ICE and resolve with the
   * new answer (candidates in it unless `trickle`); otherwise the candidates are added.
   * `mids`: a whole re-offer's sections, which must be the first offer's. Throws
   * IceUpdateRefused saying why not.
   */
  update(update: IceUpdate, { trickle = false, mids }: { trickle?: boolean; mids?: string[] } = {}): Promise<{ restarted: boolean; answer?: string }> {
    const run = this.queue.then(() => this.apply(update, trickle, mids));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async apply(update: IceUpdate, trickle: boolean, mids: string[] | undefined): Promise<{ restarted: boolean; answer?: string }> {
    if (this.closed) throw new IceUpdateRefused('session-ended', 'the session has ended');
    const taken = new Set(this.options.mids);
    const unknown = update.candidates.find((c) => c.mid !== undefined && !taken.has(c.mid));
    if (unknown) throw new IceUpdateRefused('unknown-mid', `a candidate is for a=mid:${unknown.mid}, which is not a section of this session (it has ${[...taken].join(', ') || 'none with a mid'})`);
    const current = this.pc.iceTransports[0]?.connection.remoteUsername;
    if (update.ufrag !== undefined && update.pwd !== undefined && update.ufrag !== current) {
      if (this.pastUfrags.has(update.ufrag)) throw new IceUpdateRefused('stale-ice-session', `ice-ufrag ${update.ufrag} belongs to an ICE session that has been restarted since`);
      const offered = this.offeredMids();
      if (mids && mids.join(' ') !== offered.join(' ')) throw new IceUpdateRefused('sections-changed', `the re-offer has sections ${mids.join(', ')}; the session has ${offered.join(', ')} (only ICE can be renegotiated)`);
      return { restarted: true, answer: await this.restart({ ...update, ufrag: update.ufrag, pwd: update.pwd }, trickle) };
    }
    if (mids) throw new IceUpdateRefused('not-a-restart', 'the re-offer has the ICE credentials of the current session: restart ICE (restartIce()) before making it');
    if ((this.trickled += update.candidates.length) > MAX_CANDIDATES) throw new IceUpdateRefused('too-many-candidates', `more than ${MAX_CANDIDATES} candidates in one ICE session`);
    const mid = this.options.mids[0];
    try {
      for (const c of update.candidates) await this.addCandidate({ candidate: c.candidate, sdpMid: c.mid ?? mid });
      if (update.endOfCandidates) await this.addCandidate(null);
    } catch (e) {
      throw new IceUpdateRefused('bad-candidate', `a candidate could not be used: ${(e as Error).message}`);
    }
    return { restarted: false };
  }

  /** The mids of the offer's sections, in order (rejected ones too). */
  private offeredMids(): string[] {
    return [...this.remoteOffer.matchAll(/^a=mid:(\S+)/gm)].map((m) => m[1]);
  }

  /** An ICE restart (see werift/ice-restart.ts for what werift needs): the re-offer, the new answer. */
  private async restart(update: IceUpdate & { ufrag: string; pwd: string }, trickle: boolean): Promise<string> {
    const offer = withIce(this.remoteOffer, { ...update, candidates: update.candidates.filter((c) => !isMdnsName(parseCandidate(c.candidate)?.address ?? '')) });
    const previous = this.pc.iceTransports[0]?.connection.remoteUsername;
    this.options.restarting();
    this.trickled = update.candidates.length;
    try {
      restartForNewCredentials(this.pc, update);
      await this.pc.setRemoteDescription({ type: 'offer', sdp: offer });
      keepToConfiguredStun(this.pc, this.options.servers);
      await this.pc.setLocalDescription(await this.pc.createAnswer());
    } catch (e) {
      // werift is half-way through a renegotiation: this peer cannot go on.
      this.options.failed();
      throw new OfferNotAnswerable((e as Error).message ?? String(e));
    }
    if (previous) this.pastUfrags.add(previous);
    this.remoteOffer = offer;
    this.restarts++;
    if (!trickle) await waitForGathering(this.pc);
    const local = this.pc.localDescription?.sdp;
    if (!local) throw new OfferNotAnswerable('werift produced no answer');
    return this.options.shape(local);
  }
}

export async function waitForGathering(pc: RTCPeerConnection, timeoutMs = 10_000): Promise<void> {
  if (pc.iceGatheringState === 'complete') return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const sub = pc.iceGatheringStateChange.subscribe((s) => {
      if (s === 'complete') {
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      }
    });
  });
}

export type SelectedPair = z.infer<typeof selectedPair>;

/** The ICE candidate pair `pc` uses, once connected. */
export function selectedPairOf(pc: RTCPeerConnection): SelectedPair | undefined {
  const pair = pc.iceTransports[0]?.getSelectedCandidatePair();
  if (!pair) return undefined;
  const local = parseCandidate(pair.local.candidate);
  const remote = parseCandidate(pair.remote.candidate);
  return local && remote ? { local, remote } : undefined;
}
