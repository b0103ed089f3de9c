import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Output } from '../../streams/output-contract.js';
import { startPipeline } from '../pipeline-output.js';
import { OutputRequestError, type KindRequest, type KindServices, type OutputKind } from '../kind.js';

// HLS: ffmpeg writes into data/hls/<stream>/, which /hls/ serves. A new session starts
// with an empty folder (an earlier session's segments must not mix in); when the output
// ends, its playlist is ended and the folder is removed after hls.cleanupAfterSeconds.

/**
 * Makes sure an ended stream's playlist says so. ffmpeg writes #EXT-X-ENDLIST when it can
 * stop cleanly; when it had to be killed (its input went silent), the last playlist it
 * wrote is complete (temp_file) but open-ended, and players would wait forever.
 */
export async function endPlaylist(file: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (text.startsWith('#EXTM3U') && !text.includes('#EXT-X-ENDLIST')) await appendFile(file, '#EXT-X-ENDLIST\n');
}

export class HlsKind implements OutputKind {
  private readonly cleanups = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly services: KindServices,
    private readonly cleanupAfterSeconds: number,
  ) {}

  dir(stream: string): string {
    return path.resolve(this.services.dataDir, 'hls', stream);
  }

  async start({ stream, definition, values: requested, id }: KindRequest): Promise<Output> {
    const values = { ...requested };
    if (values.audio === 'copy') {
      // Opus in MPEG-TS segments is written by ffmpeg but played by nobody: refused, not
      // left to fail in the player.
      if (values.segmentFormat !== 'fmp4') throw new OutputRequestError(400, 'audio copy needs segmentFormat fmp4: players do not take Opus in MPEG-TS segments');
      // G.711 has no place in fMP4: that audio gets AAC as with audio aac.
      if (stream.tracks.find((t) => t.kind === 'audio')?.codec.name !== 'opus') values.audio = 'aac';
    }
    const dir = this.dir(stream.name);
    this.cancelCleanup(dir);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const output = startPipeline(stream, this.services, definition, dir, values, { id, urls: { playlist: `/hls/${stream.name}/index.m3u8` }, audioInput: values.audio === 'copy' ? 'source' : 'aac' });
    output.on('state', (s) => {
      if (s !== 'stopped' && s !== 'failed') return;
      void endPlaylist(path.join(dir, 'index.m3u8'));
      this.scheduleCleanup(dir);
    });
    return output;
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
  }
}
