import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Output } from '../../streams/output-contract.js';
import type { Stream } from '../../streams/stream.js';
import { startPipeline } from '../pipeline-output.js';
import { outputDir, type KindRequest, type KindServices, type OutputKind } from '../kind.js';

// Snapshots (GET /api/streams/:name/snapshot.jpg): one short ffmpeg per request, shared by
// requests that come while it runs. It writes snapshot.jpg into its folder and exits.

export class SnapshotKind implements OutputKind {
  private readonly pending = new Map<Stream, Promise<Buffer>>();

  constructor(
    private readonly services: KindServices,
    /** Starts this type of output through the catalog (checks). */
    private readonly startOutput: (stream: Stream) => Promise<Output>,
  ) {}

  start({ stream, definition, values, id, dir }: KindRequest): Output {
    return startPipeline(stream, this.services, definition, dir, values, { id });
  }

  /** The current picture as JPEG. */
  take(stream: Stream, timeoutMs = 10_000): Promise<Buffer> {
    let pending = this.pending.get(stream);
    if (!pending) {
      pending = this.run(stream, timeoutMs).finally(() => this.pending.delete(stream));
      this.pending.set(stream, pending);
    }
    return pending;
  }

  private async run(stream: Stream, timeoutMs: number): Promise<Buffer> {
    const output = await this.startOutput(stream);
    const dir = outputDir(this.services.dataDir, stream.name, output.id);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no picture from the publisher in time')), timeoutMs);
        output.on('state', (s) => {
          if (s !== 'stopped' && s !== 'failed') return;
          clearTimeout(timer);
          if (s === 'stopped') resolve();
          else reject(new Error(output.error ?? 'snapshot failed'));
        });
      });
      return await readFile(path.join(dir, 'snapshot.jpg'));
    } finally {
      await stream.removeOutput(output.id);
      await rm(dir, { recursive: true, force: true });
    }
  }
}
