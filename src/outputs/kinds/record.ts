import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Recordings } from '../../recordings/recordings.js';
import type { Output } from '../../streams/output-contract.js';
import { isTranscoded } from '../../webrtc/codec-policy.js';
import { startPipeline } from '../pipeline-output.js';
import { OutputRequestError, type KindRequest, type KindServices, type OutputKind } from '../kind.js';

// A recording (of a VP8/VP9 publisher: the stream's H.264, or with videoCodec original the
// VP8/VP9 as sent, in MKV or WebM): refused when the disk is nearly full, stopped (finished, kept, marked
// failed) when free space falls below recordings.minFreeMB while it runs, and each run of
// its ffmpeg writes its own part, so a restart never truncates what was written. The file
// goes to the recordings folder; the session SDP to the output's own folder, since two
// recordings of one stream may run at once.

/** How often a running recording checks the free disk space. */
const DISK_CHECK_MS = 2000;

export class RecordKind implements OutputKind {
  constructor(
    private readonly services: KindServices,
    private readonly recordings: Recordings,
    private readonly minFreeMB: number,
  ) {}

  private async tooFull(): Promise<string | undefined> {
    const free = await this.recordings.freeMB();
    return free !== undefined && free < this.minFreeMB ? `disk full: ${Math.round(free)} MB free where recordings are written, below recordings.minFreeMB (${this.minFreeMB})` : undefined;
  }

  async start({ stream, definition, values, id, dir }: KindRequest): Promise<Output> {
    const full = await this.tooFull();
    if (full) throw new OutputRequestError(507, `no room for a recording (${full})`);
    const format = String(values.format);
    const videoCodec = stream.tracks.find((t) => t.kind === 'video')?.codec;
    const video = videoCodec?.name;
    const transcoded = videoCodec !== undefined && isTranscoded(videoCodec);
    // videoCodec original: a VP8/VP9 publisher's video as sent, not the stream's H.264 from it.
    const original = values.videoCodec === 'original' && transcoded;
    if (original && format === 'mp4') throw new OutputRequestError(400, `videoCodec: original keeps the publisher's ${video}, which needs format mkv or webm`);
    const audio = stream.tracks.find((t) => t.kind === 'audio')?.codec.name;
    // WebM holds VP8/VP9 and Opus only: what a VP8/VP9 publisher sends, kept as sent.
    if (format === 'webm' && ((video && !original) || (audio && audio !== 'opus'))) {
      throw new OutputRequestError(400, `format: webm holds only VP8/VP9 and Opus, kept as sent (videoCodec original); stream ${stream.name} sends ${[video, audio].filter(Boolean).join(' + ')}${transcoded && !original ? ' (add videoCodec: original)' : ''}`);
    }
    const folder = this.recordings.dir(stream.name);
    await mkdir(folder, { recursive: true });
    const file = this.recordings.reserve(stream.name, format);
    // Keep the publisher's audio where the container takes it; the stream's shared AAC otherwise.
    const copy = audio === 'opus' || ((audio === 'PCMU' || audio === 'PCMA') && format === 'mkv');
    await this.recordings.started(stream.name, file, new Date());
    let part = 0;
    const output = startPipeline(stream, this.services, definition, dir, { ...values, file: path.join(folder, file) }, {
      id,
      audioInput: copy ? 'source' : 'aac',
      videoInput: original ? 'source' : 'h264',
      urls: { file: this.recordings.url(stream.name, file) },
      removeDirWhenDone: true,
      launchValues: async () => {
        part = part === 0 ? 1 : await this.recordings.nextPart(stream.name, file, part);
        return { file: path.join(folder, this.recordings.partFile(file, part)) };
      },
    });
    const max = Number(values.maxDurationSeconds);
    const timer = max > 0 ? setTimeout(() => void stream.removeOutput(output.id), max * 1000) : undefined;
    const watch = setInterval(() => {
      void this.tooFull().then((reason) => {
        if (reason) void output.stop(reason);
      });
    }, DISK_CHECK_MS);
    output.on('state', (s) => {
      if (s !== 'stopped' && s !== 'failed') return;
      clearTimeout(timer);
      clearInterval(watch);
      void this.recordings.finished(stream.name, file, s === 'failed' ? output.error : undefined).then((recording) => {
        if (recording) this.services.events.publish({ type: 'recording.finished', stream: stream.name, session: stream.sessionId, output: { id: output.id, type: 'record' }, recording });
      });
    });
    return output;
  }
}
