import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { ViewerHandle } from '../media/viewer-handle.js';
import { SdpError } from '../sdp/offer.js';
import { STREAM_NAME } from '../streams/names.js';
import type { StreamRegistry } from '../streams/registry.js';
import type { Stream } from '../streams/stream.js';
import { AnswerUnavailable, OfferNotAnswerable } from '../webrtc/publisher-peer.js';
import { WatchRefused } from './watch-refused.js';

// WHEP viewers of the gateway's streams: who may watch (the limits), and where the viewer
// goes (the media worker of the stream it watches: SessionHandle.openViewer). Each refusal
// is a WatchRefused (watch-refused.ts) with the status WHEP answers.

/** When a refused viewer may try again: viewers come and go within seconds. */
const RETRY_AFTER_SECONDS = 5;

export class Viewers {
  constructor(
    private readonly registry: StreamRegistry,
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  /**
   * Viewers of every stream, connected or connecting. An offer being answered counts too:
   * its viewer is registered (SessionHandle.openViewer) in the same tick as the check.
   */
  count(): number {
    return this.registry.all().reduce((n, s) => n + s.media.viewers.size, 0);
  }

  /** Answers a viewer's offer for stream `name`, or throws WatchRefused saying why not. */
  async watch(name: string, offer: string, from?: string): Promise<{ stream: Stream; viewer: ViewerHandle; answer: string }> {
    const stream = STREAM_NAME.test(name) ? this.registry.get(name) : undefined;
    if (!stream || stream.closed) throw new WatchRefused('no-stream', `no stream named ${name} is being published`);
    const { maxViewersPerStream, maxViewers } = this.config.whep;
    const mine = stream.media.viewers.size;
    if (mine >= maxViewersPerStream) throw new WatchRefused('stream-full', `stream ${name} has ${mine} viewers (whep.maxViewersPerStream ${maxViewersPerStream}); watch over HLS, or try again later`, RETRY_AFTER_SECONDS);
    const all = this.count();
    if (all >= maxViewers) throw new WatchRefused('gateway-full', `the gateway has ${all} WHEP viewers (whep.maxViewers ${maxViewers}); watch over HLS, or try again later`, RETRY_AFTER_SECONDS);
    const id = randomUUID();
    const { viewer, answer } = await stream.media
      .openViewer({ viewer: id, stream: name, offer, ice: this.config.ice }, this.config.ice)
      .catch((e: unknown) => {
        throw this.refusalOf(e, name, from);
      });
    const log = stream.log.child({ viewer: id });
    log.info({ event: 'viewer-joined', from, tracks: viewer.tracks }, 'WHEP viewer joined');
    viewer.once('ended', (reason) => log.info({ event: 'viewer-left', reason }, `WHEP viewer left: ${reason}`));
    return { stream, viewer, answer };
  }

  /** A viewer of stream `name`, by id. */
  find(name: string, id: string): { stream: Stream; viewer: ViewerHandle } | undefined {
    const stream = this.registry.get(name);
    const viewer = stream?.media.viewers.get(id);
    return stream && viewer && !viewer.closed ? { stream, viewer } : undefined;
  }

  private refusalOf(e: unknown, name: string, from: string | undefined): unknown {
    if (e instanceof SdpError) return new WatchRefused(e.status === 406 ? 'no-codec' : 'bad-sdp', e.message);
    if (e instanceof OfferNotAnswerable) {
      this.log.warn({ event: 'viewer-offer-refused', stream: name, detail: e.detail, from }, 'werift could not answer a viewer offer');
      return new WatchRefused('bad-sdp', e.message);
    }
    if (e instanceof AnswerUnavailable) return new WatchRefused('unavailable', e.message, RETRY_AFTER_SECONDS);
    if (e instanceof Error && /media session .* (has )?ended/.test(e.message)) return new WatchRefused('unavailable', `stream ${name} is ending`, RETRY_AFTER_SECONDS);
    return e;
  }
}
