import type { ChosenCodec } from '../webrtc/codec-policy.js';
import { loadSharedDefinition, type PipelineDefinition } from '../pipelines/definition.js';
import type { Stream, StreamHelper } from '../streams/stream.js';
import type { Track } from '../streams/track.js';
import { outputDir } from './kind.js';
import { PipelineOutput, type OutputContext, type PipelineServices } from './pipeline-output.js';

// One AAC encode per stream. Every output that needs AAC (HLS, /live, pushes, rtp-mpegts,
// recordings whose container cannot take the publisher's audio) used to encode the Opus
// itself: a stream with HLS, /live and an RTMP push encoded the same audio three times.
// Now one ffmpeg (pipelines/shared/aac.json) encodes it and sends AAC back as RTP to the
// publisher's media worker, where it becomes one more track of the session (a "local
// track"); those outputs are fed that track and copy it. The encoder starts with the first
// output that asks for it and stops after the last one has finished (so an output that
// is finishing its files still gets audio), or when the stream closes. It is restarted
// with back-off like any pipeline; its port, and so the outputs' feeds, stay the same.

/** AAC-LC AudioSpecificConfig for 48 kHz (RFC 3640 `config`): object type 2, frequency index 3, channels. */
export function aacConfig(channels: number): string {
  return ((2 << 11) | (3 << 7) | (channels << 3)).toString(16).padStart(4, '0');
}

/** The codec of the shared AAC track, as the encoder's RTP muxer sends it (AAC-hbr). */
export function aacCodec(channels: number): ChosenCodec {
  return {
    kind: 'audio',
    index: -1,
    name: 'AAC',
    payloadType: 97,
    clockRate: 48000,
    channels,
    fmtp: { streamtype: '5', 'profile-level-id': '1', mode: 'AAC-hbr', sizelength: '13', indexlength: '3', indexdeltalength: '3', config: aacConfig(channels) },
  };
}

/**
 * How much later the AAC of a moment arrives than the Opus it was encoded from (ffmpeg's
 * RTP demuxer, decoder, one 1024-sample AAC frame, RTP muxer): measured here 45-65 ms,
 * median 55. Outputs start the AAC that much after their first picture, so sound and
 * picture start together (otherwise the sound would lead by about this much).
 */
const ENCODER_LATENCY_MS = 55;

let definition: PipelineDefinition | undefined;

export class SharedAac implements StreamHelper {
  private users = 0;
  private local: Promise<{ track: Track; port: number }> | undefined;
  private encoder: PipelineOutput | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly stream: Stream,
    private readonly services: PipelineServices & { dataDir: string },
  ) {}

  /** The stream's AAC track, with its encoder running; give it back with release(). */
  async acquire(): Promise<Track> {
    this.users++;
    const source = this.stream.tracks.find((t) => t.kind === 'audio');
    if (!source) throw new Error(`stream ${this.stream.name} has no audio to encode`);
    this.local ??= this.stream.localTrack(aacCodec(source.codec.channels === 1 ? 1 : 2), ENCODER_LATENCY_MS);
    const { track, port } = await this.local;
    if (!this.encoder && this.users > 0 && !this.stream.closed) this.startEncoder(source, port);
    return track;
  }

  release(): void {
    this.users = Math.max(0, this.users - 1);
    if (this.users === 0) void this.stopEncoder();
  }

  private startEncoder(source: Track, port: number): void {
    definition ??= loadSharedDefinition('aac');
    const s = this.stream;
    const ctx: OutputContext = {
      ports: this.services.ports,
      ffmpegPath: this.services.ffmpegPath,
      stopTimeoutMs: this.services.stopTimeoutMs,
      streamName: s.name,
      tracks: [source],
      requestKeyframe: () => undefined,
      openFeed: (targets) => s.openFeed(targets),
      log: s.log,
    };
    const values = { port, audioChannels: source.codec.channels === 1 ? 1 : 2, audioBitrate: source.codec.channels === 1 ? '96k' : '128k', file: '' };
    this.encoder = new PipelineOutput(definition, outputDir(this.services.dataDir, s.name, 'shared-aac'), values, ctx, { id: 'shared-aac', removeDirWhenDone: true, waitForParameterSets: false });
    this.encoder.on('state', (state) => s.log.debug({ event: 'shared-aac', state, error: this.encoder?.error }, `shared AAC encoder ${state}`));
    void this.encoder.start();
  }

  private stopEncoder(): Promise<void> {
    const encoder = this.encoder;
    this.encoder = undefined;
    if (!encoder) return this.stopping ?? Promise.resolve();
    this.stopping = encoder.stop().finally(() => (this.stopping = undefined));
    return this.stopping;
  }

  /** The stream is closing (its outputs have stopped). */
  async stop(): Promise<void> {
    this.users = 0;
    await this.stopEncoder();
  }
}

/** The stream's shared AAC (made on first use). */
export function sharedAac(stream: Stream, services: PipelineServices & { dataDir: string }): SharedAac {
  return stream.helper('shared-aac', () => new SharedAac(stream, services));
}
