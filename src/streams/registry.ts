import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { videoBitrateFor } from '../config/patterns.js';
import { ClusterUnavailable, NameTaken, type StreamDirectory } from '../cluster/directory.js';
import type { Config } from '../config/schema.js';
import type { EventBus } from '../events/bus.js';
import type { Logger } from '../log.js';
import type { MediaWorkers } from '../media/workers.js';
import { parseOffer, SdpError, sectionName } from '../sdp/offer.js';
import { chooseCodecs, isTranscoded } from '../webrtc/codec-policy.js';
import { AnswerUnavailable, OfferNotAnswerable } from '../webrtc/publisher-peer.js';
import { STREAM_NAME, STREAM_NAME_RULE } from './names.js';
import { PublishRefused } from './publish-refused.js';
import { Stream, type CompositeMark, type StreamInfo } from './stream.js';
import type { ChosenCodec } from '../webrtc/codec-policy.js';

// The registry of live streams: one publisher per name, created from a WHIP offer and
// removed when it leaves, with the gateway's events for both. It announces each new
// stream ('stream'); what outputs a stream gets is src/outputs/'s business. Every offer
// it does not take is refused with a PublishRefused (publish-refused.ts), which WHIP and
// the WebSocket signalling each turn into their answer in one place.
//
// Names are the stream directory's (cluster/directory.ts): alone it owns every name, in
// a cluster it owns a name in Redis for this node before the offer is answered (SET NX:
// of two nodes racing for a name exactly one wins) and gives it up when the stream ends.

/** When a refused publisher may try again: offers connect or time out within seconds. */
const RETRY_AFTER_SECONDS = 5;

export interface PublishOptions {
  /** Answer at once and trickle candidates (WebSocket) instead of gathering first (WHIP). */
  trickle?: boolean;
  /** Where the offer came from (the HTTP or WebSocket client's address). */
  from?: string;
}

export interface PublishResult {
  stream: Stream;
  answer: string;
}

export interface RegistryEvents {
  stream: [Stream];
}

export class StreamRegistry extends EventEmitter<RegistryEvents> {
  private readonly streams = new Map<string, Stream>();
  /** Names whose offer is being answered right now (closes the race between two POSTs), and from where. */
  private readonly pending = new Map<string, string | undefined>();
  private shuttingDown = false;
  private gathering: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    /** Where stream.started and stream.stopped go. */
    private readonly events: EventBus,
    /** The worker threads that run the publishers' peers. */
    private readonly media: MediaWorkers,
    /** Which names are this node's, and where a new publisher should go. */
    readonly directory: StreamDirectory,
  ) {
    super();
    directory.attach({ sessions: () => this.streams.size + this.pending.size, has: (name) => this.streams.has(name), streams: () => this.list() });
  }

  /**
   * Where an offer for `name` should be published: here (undefined) or, in a cluster,
   * another node's URL (this one is full: RFC 9725 §4.5 redirects there). Throws
   * PublishRefused: the name is live on another node (409), no node has room (503).
   */
  async placement(name: string): Promise<string | undefined> {
    if (!STREAM_NAME.test(name)) throw new PublishRefused('bad-stream-name', STREAM_NAME_RULE);
    const place = await this.directory.place(name).catch((e: unknown) => {
      throw e instanceof ClusterUnavailable ? new PublishRefused('cluster-unavailable', e.message, RETRY_AFTER_SECONDS) : e;
    });
    if (place.kind === 'elsewhere') return place.node.url;
    if (place.kind === 'taken') throw new PublishRefused('stream-busy', `stream "${name}" is already being published on node ${place.node.id}`);
    if (place.kind === 'full') throw new PublishRefused('gateway-full', `no room for another publisher: this gateway is full (${place.reason})${this.directory.clustered ? ' and so is every other node of its cluster' : ''}`, RETRY_AFTER_SECONDS);
    return undefined;
  }

  get(name: string): Stream | undefined {
    return this.streams.get(name);
  }

  list(): StreamInfo[] {
    return [...this.streams.values()].map((s) => s.info());
  }

  all(): Stream[] {
    return [...this.streams.values()];
  }

  /**
   * Answers an offer to publish `name`, or throws PublishRefused saying why not. An offer
   * that has not connected yet holds its name only until another offer for the name comes:
   * a stray or abandoned offer cannot keep the real publisher out.
   */
  async publish(name: string, offerText: string, options: PublishOptions = {}): Promise<PublishResult> {
    if (!STREAM_NAME.test(name)) throw new PublishRefused('bad-stream-name', STREAM_NAME_RULE);
    if (this.shuttingDown) throw stopping();
    const codecs = codecsOf(offerText); // bad SDP (400) or no usable codec (406) is refused before anything is reserved
    const existing = this.streams.get(name);
    if (codecs.some(isTranscoded)) this.checkTranscodeCapacity(existing);
    if (existing?.composite) throw new PublishRefused('stream-busy', `"${name}" is a composite (a stream the gateway composes from others): publish under another name`);
    const replace = existing && (existing.state === 'connecting' || this.config.streams.replaceExisting);
    if (this.pending.has(name) || (existing && !replace)) throw new PublishRefused('stream-busy', `stream "${name}" is already being published`);
    this.checkConnecting(options.from, existing);
    this.checkSessions(existing);
    this.pending.set(name, options.from);
    try {
      if (existing) await existing.close('replaced', existing.state === 'connecting' ? 'replaced by a new offer before it connected' : undefined);
      await this.claim(name);
      const sessionId = randomUUID();
      const { handle, answer } = await this.answerSerially(() =>
        this.media.answer({ session: sessionId, stream: name, offer: offerText, ice: this.config.ice, video: videoBitrateFor(this.config.video, name), trickle: options.trickle ?? false }),
      ).catch((e: unknown) => {
        this.directory.release(name);
        throw this.refusalOf(e, name, options.from);
      });
      if (this.shuttingDown) {
        this.directory.release(name);
        await handle.close();
        throw stopping();
      }
      const stream = new Stream(name, sessionId, handle, {
        timeouts: this.config.ice,
        log: this.log,
      }, options.from);
      stream.log.info({ event: 'session-created', tracks: handle.codecs.map((t) => `${t.kind}:${t.name}/${t.payloadType}`) }, 'publisher session created');
      // Refused loudly, not dropped quietly: a stream without sound or picture says why.
      for (const m of handle.ignored) stream.log.warn({ event: 'media-ignored', mid: m.mid, kind: m.kind, reason: m.reason }, `offered ${sectionName(m)} left out: ${m.reason}`);
      this.register(stream);
      return { stream, answer };
    } finally {
      this.pending.delete(name);
    }
  }

  /** Listed under its name, with its events, and announced (outputs start: autostart.ts). */
  private register(stream: Stream): void {
    const { name, sessionId } = stream;
    this.streams.set(name, stream);
    stream.once('closed', ({ cause, reason }) => {
      if (this.streams.get(name) === stream) {
        this.streams.delete(name);
        if (!this.pending.has(name)) this.directory.release(name);
      }
      this.events.publish({ type: 'stream.stopped', stream: name, session: sessionId, cause, reason });
    });
    stream.on('output', () => this.directory.changed()); // the cluster lists it at once, not at the next heartbeat
    stream.on('live', () => {
      this.directory.changed();
      this.events.publish({ type: 'stream.started', stream: name, session: sessionId });
    });
    this.emit('stream', stream);
  }

  /**
   * A stream the gateway makes itself rather than a publisher's offer (a composite,
   * src/composites/): its tracks (`codecs`) are fed over loopback by the gateway's own
   * ffmpeg, on the ports returned, in a media session without a peer. Names stay unique,
   * across a cluster too: a name being published is refused (PublishRefused stream-busy,
   * 409), as a publisher is refused the composite's name. `mediaTimeoutMs`: how long its
   * stream waits for media (the gateway's own encoder restarts with back-off) before it ends.
   */
  async adopt(name: string, codecs: ChosenCodec[], composite: () => CompositeMark, options: { mediaTimeoutMs?: number } = {}): Promise<{ stream: Stream; ports: number[] }> {
    if (!STREAM_NAME.test(name)) throw new PublishRefused('bad-stream-name', STREAM_NAME_RULE);
    if (this.shuttingDown) throw stopping();
    if (this.pending.has(name) || this.streams.has(name)) throw new PublishRefused('stream-busy', `stream "${name}" exists already (a publisher or a composite)`);
    this.pending.set(name, undefined);
    try {
      await this.claim(name);
      const sessionId = randomUUID();
      let handle;
      const ports: number[] = [];
      try {
        handle = await this.media.localSession(sessionId, name);
        for (const codec of codecs) ports.push((await handle.addLocalTrack(codec, 0)).port);
      } catch (e) {
        await handle?.close();
        this.directory.release(name);
        throw e;
      }
      handle.codecs = codecs;
      const stream = new Stream(name, sessionId, handle, { timeouts: { ...this.config.ice, mediaTimeoutMs: options.mediaTimeoutMs ?? this.config.ice.mediaTimeoutMs }, log: this.log });
      stream.composite = composite;
      stream.log.info({ event: 'session-created', tracks: codecs.map((t) => `${t.kind}:${t.name}/${t.payloadType}`), composite: true }, 'composite session created');
      this.register(stream);
      return { stream, ports };
    } finally {
      this.pending.delete(name);
    }
  }

  /** The cap on publishers (cluster.maxSessions) holds even for two offers placed here at once. */
  private checkSessions(replacing: Stream | undefined): void {
    const max = this.config.cluster.maxSessions;
    if (max > 0 && !replacing && this.streams.size + this.pending.size >= max) {
      throw new PublishRefused('gateway-full', `no room for another publisher: this gateway has ${max} (cluster.maxSessions)`, RETRY_AFTER_SECONDS);
    }
  }

  /** Owns `name` for this node (alone: it does), or says who has it. */
  private async claim(name: string): Promise<void> {
    try {
      await this.directory.claim(name);
    } catch (e) {
      if (e instanceof NameTaken) throw new PublishRefused('stream-busy', `stream "${name}" is already being published on node ${e.node}`);
      if (e instanceof ClusterUnavailable) throw new PublishRefused('cluster-unavailable', e.message, RETRY_AFTER_SECONDS);
      throw e;
    }
  }

  /** Refuses a VP8/VP9 offer when transcode.maxConcurrent streams are transcoded already (`replacing` does not count). */
  private checkTranscodeCapacity(replacing: Stream | undefined): void {
    const limit = this.config.transcode.maxConcurrent;
    const busy = [...this.streams.values()].filter((s) => s !== replacing && s.tracks.some((t) => isTranscoded(t.codec))).length;
    if (busy >= limit) {
      throw new PublishRefused('no-transcode-capacity', `no transcoding capacity: ${limit} VP8/VP9 publisher(s) are already being transcoded to H.264 (transcode.maxConcurrent); publish H.264, or try again later`, RETRY_AFTER_SECONDS);
    }
  }

  /**
   * Refuses an offer when its address, or the gateway as a whole, already has the most
   * offers connecting at once (each holds a transport and an ffmpeg until it connects or
   * times out). An offer that replaces one still connecting takes its place.
   */
  private checkConnecting(from: string | undefined, replacing: Stream | undefined): void {
    const connecting = [...this.streams.values()].filter((s) => s.state === 'connecting' && s !== replacing);
    const all = connecting.length + this.pending.size;
    const { maxConnecting, maxConnectingPerAddress } = this.config.streams;
    if (all >= maxConnecting) throw new PublishRefused('gateway-busy', `${all} offers are still connecting (streams.maxConnecting ${maxConnecting}); try again in a few seconds`, RETRY_AFTER_SECONDS);
    if (from === undefined) return;
    const mine = connecting.filter((s) => s.from === from).length + [...this.pending.values()].filter((f) => f === from).length;
    if (mine >= maxConnectingPerAddress) {
      throw new PublishRefused('too-many-connecting', `${maxConnectingPerAddress} offers from ${from} are still connecting (streams.maxConnectingPerAddress); wait for them to connect or time out`, RETRY_AFTER_SECONDS);
    }
  }

  /** What an answer that failed in the media worker tells the publisher. */
  private refusalOf(e: unknown, name: string, from: string | undefined): unknown {
    if (e instanceof SdpError) return new PublishRefused(e.status === 406 ? 'no-codec' : 'bad-sdp', e.message);
    if (e instanceof OfferNotAnswerable) {
      this.log.warn({ event: 'offer-refused', stream: name, detail: e.detail, from }, 'werift could not answer an offer');
      return new PublishRefused('bad-sdp', e.message);
    }
    if (e instanceof AnswerUnavailable) return new PublishRefused('unavailable', e.message, RETRY_AFTER_SECONDS);
    return e;
  }

  /**
   * With a fixed ICE port range, werift picks a free port and binds it a moment later, so
   * two peers gathering at once can pick the same port and one loses its candidate. The
   * gathering is therefore done one peer at a time (a few ms each on a host).
   */
  private answerSerially<T>(make: () => Promise<T>): Promise<T> {
    if (!this.config.ice.portRange) return make();
    const run = this.gathering.then(make, make);
    this.gathering = run.then(() => undefined, () => undefined);
    return run;
  }

  /** Ends a publisher's session (DELETE on the WHIP resource). */
  async unpublish(name: string, sessionId?: string): Promise<boolean> {
    const stream = this.streams.get(name);
    if (!stream || (sessionId !== undefined && stream.sessionId !== sessionId)) return false;
    await stream.close('left');
    return true;
  }

  /** An operator ends a stream (DELETE /api/streams/:name): its outputs do not wait for a return. */
  async remove(name: string): Promise<boolean> {
    const stream = this.streams.get(name);
    if (!stream) return false;
    await stream.close('removed');
    return true;
  }

  /** Stops every stream and output; ffmpeg processes finish their files. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    await Promise.all([...this.streams.values()].map((s) => s.close('shutdown')));
  }

  /** PIDs of running ffmpeg processes (health, tests). */
  ffmpegPids(): number[] {
    return this.all().flatMap((s) => s.ffmpegPids());
  }
}

/** The codecs the gateway takes from an offer; what is wrong with it is the client's to fix (400, 406). */
function codecsOf(text: string): ReturnType<typeof chooseCodecs>['tracks'] {
  try {
    return chooseCodecs(parseOffer(text)).tracks;
  } catch (e) {
    if (e instanceof SdpError) throw new PublishRefused(e.status === 406 ? 'no-codec' : 'bad-sdp', e.message);
    throw e;
  }
}

function stopping(): PublishRefused {
  return new PublishRefused('unavailable', 'the gateway is shutting down', RETRY_AFTER_SECONDS);
}
