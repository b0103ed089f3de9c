import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Fmp4Reader } from '../../hls/fmp4.js';
import { Segmenter } from '../../hls/segmenter.js';
import { LlHlsServer } from '../../hls/server.js';
import { loadSharedDefinition, type PipelineDefinition } from '../../pipelines/definition.js';
import type { Output } from '../../streams/output-contract.js';
import type { Stream } from '../../streams/stream.js';
import { startPipeline } from '../pipeline-output.js';
import { OutputRequestError, type KindRequest, type KindServices, type OutputKind } from '../kind.js';

// HLS, in one of two ways:
// - Low-Latency HLS (lowLatency, the default): ffmpeg writes fragmented MP4 to its stdout
//   (pipelines/shared/hls-ll.json), a fragment every part; the gateway cuts parts and
//   segments from it and serves the playlist and media from memory (src/hls/). Plain
//   players read the same playlist as a plain live one.
// - Plain HLS: ffmpeg's HLS muxer writes into data/hls/<stream>/, which /hls/ serves. A new
//   session starts with an empty folder (an earlier session's segments must not mix in);
//   when the output ends, its playlist is ended and the folder is removed after
//   hls.cleanupAfterSeconds.

/** The part length asked for, s: ffmpeg closes a part at the first frame 5 ms short of it (see hls/segmenter.ts on PART-TARGET). */
export const PART_SECONDS = 0.2;
const FRAGMENT_MARGIN_S = 0.005;

/**
 * Makes sure an ended stream's playlist says so. ffmpeg writes #EXT-X-ENDLIST when it can
 * stop cleanly; when it had to be killed (its input went silent), the last playlist it
 * wrote is complete (temp_file) but open-ended, and players would wait forever.
 */
export async function endPlaylist(file: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (text.startsWith('#EXTM3U') && !text.includes('#EXT-X-ENDLIST')) await appendFile(file, '#EXT-X-ENDLIST\n');
}

/** One stream's Low-Latency HLS: ffmpeg's fMP4 in, parts and segments, the server that answers for them. */
interface LowLatency {
  segmenter: Segmenter;
  server: LlHlsServer;
  /** Dropped this long after the output ended (its ended playlist is served until then). */
  cleanup?: NodeJS.Timeout;
}

export class HlsKind implements OutputKind {
  private readonly cleanups = new Map<string, NodeJS.Timeout>();
  private readonly lowLatencyStreams = new Map<string, LowLatency>();
  private llDefinition: PipelineDefinition | undefined;

  constructor(
    private readonly services: KindServices,
    private readonly cleanupAfterSeconds: number,
  ) {}

  /** The folder plain HLS writes a stream's files into. */
  dir(stream: string): string {
    return path.resolve(this.services.dataDir, 'hls', stream);
  }

  /** The Low-Latency HLS server of a stream, while it has one (running, or ended less than hls.cleanupAfterSeconds ago). */
  lowLatency(stream: string): LlHlsServer | undefined {
    return this.lowLatencyStreams.get(stream)?.server;
  }

  /** What the segmenter counted for a stream (parts longer than PART-TARGET, forced cuts). */
  lowLatencyStats(stream: string): Segmenter['stats'] | undefined {
    return this.lowLatencyStreams.get(stream)?.segmenter.stats;
  }

  async start(req: KindRequest): Promise<Output> {
    const values = { ...req.values };
    const { stream } = req;
    if (values.lowLatency && values.segmentFormat !== 'fmp4') throw new OutputRequestError(400, 'segmentFormat: Low-Latency HLS parts are fMP4; MPEG-TS segments need lowLatency false');
    if (values.audio === 'copy') {
      // Opus in MPEG-TS segments is written by ffmpeg but played by nobody: refused, not
      // left to fail in the player.
      if (values.segmentFormat !== 'fmp4') throw new OutputRequestError(400, 'audio copy needs segmentFormat fmp4: players do not take Opus in MPEG-TS segments');
      // G.711 has no place in fMP4: that audio gets AAC as with audio aac.
      if (stream.tracks.find((t) => t.kind === 'audio')?.codec.name !== 'opus') values.audio = 'aac';
    }
    // A new session starts clean, whichever way the last one was served.
    const dir = this.dir(stream.name);
    this.cancelCleanup(dir);
    await rm(dir, { recursive: true, force: true });
    this.dropLowLatency(stream.name);
    const audioInput = values.audio === 'copy' ? 'source' : 'aac';
    if (values.lowLatency) return this.startLowLatency(req, Number(values.segmentSeconds), Number(values.listSize), audioInput);
    await mkdir(dir, { recursive: true });
    const output = startPipeline(stream, this.services, req.definition, dir, values, { id: req.id, urls: { playlist: playlistUrl(stream) }, audioInput });
    output.on('state', (s) => {
      if (s !== 'stopped' && s !== 'failed') return;
      void endPlaylist(path.join(dir, 'index.m3u8'));
      this.scheduleCleanup(dir);
    });
    return output;
  }

  private startLowLatency(req: KindRequest, segmentSeconds: number, listSize: number, audioInput: 'source' | 'aac'): Output {
    const { stream } = req;
    const fragmentSeconds = PART_SECONDS - FRAGMENT_MARGIN_S;
    // Media sequence numbers go on from the clock (tenths of a second since 1970), not from
    // 0: a blocking playlist request's URL (/index.m3u8?_HLS_msn=N&_HLS_part=P) does not
    // name the session, and a cache in front must never answer one with a playlist of an
    // earlier session of the same stream (segments come at most two a second).
    const segmenter = new Segmenter({ fragmentSeconds, segmentTarget: segmentSeconds, listSize, firstMsn: Math.floor(Date.now() / 100) });
    const reader = new Fmp4Reader(
      (init) => segmenter.onInit(init),
      (fragment) => segmenter.onFragment(fragment),
    );
    const server = new LlHlsServer(segmenter, { lowLatency: true });
    const ll: LowLatency = { segmenter, server };
    this.lowLatencyStreams.set(stream.name, ll);
    const stdout = new Writable({
      write(chunk: Buffer, _enc, done) {
        reader.write(chunk);
        done();
      },
    });
    this.llDefinition ??= loadSharedDefinition('hls-ll');
    const values = { segmentSeconds, fragmentMicroseconds: Math.round(fragmentSeconds * 1e6) };
    // The session SDP goes into the output's own folder; the media stay in memory.
    const output = startPipeline(stream, this.services, this.llDefinition, req.dir, values, { id: req.id, stdout, urls: { playlist: playlistUrl(stream) }, audioInput, removeDirWhenDone: true });
    output.on('state', (s) => {
      // ffmpeg died and is started again: a box it left half written must not be read as
      // the start of the next one's output (which begins with a new init section).
      if (s === 'restarting') reader.reset();
      if (s !== 'stopped' && s !== 'failed') return;
      segmenter.end();
      if (this.lowLatencyStreams.get(stream.name) !== ll) return;
      clearTimeout(ll.cleanup);
      ll.cleanup = setTimeout(() => this.dropLowLatency(stream.name, ll), this.cleanupAfterSeconds * 1000);
      ll.cleanup.unref();
    });
    return output;
  }

  private dropLowLatency(name: string, only?: LowLatency): void {
    const ll = this.lowLatencyStreams.get(name);
    if (!ll || (only && ll !== only)) return;
    clearTimeout(ll.cleanup);
    ll.segmenter.end();
    ll.server.close();
    this.lowLatencyStreams.delete(name);
  }

  private cancelCleanup(dir: string): void {
    clearTimeout(this.cleanups.get(dir));
    this.cleanups.delete(dir);
  }

  private scheduleCleanup(dir: string): void {
    this.cancelCleanup(dir);
    const timer = setTimeout(() => {
      this.cleanups.delete(dir);
      void rm(dir, { recursive: true, force: true });
    }, this.cleanupAfterSeconds * 1000);
    timer.unref();
    this.cleanups.set(dir, timer);
  }

  close(): void {
    for (const t of this.cleanups.values()) clearTimeout(t);
    for (const name of [...this.lowLatencyStreams.keys()]) this.dropLowLatency(name);
  }
}

function playlistUrl(stream: Stream): string {
  return `/hls/${stream.name}/index.m3u8`;
}
