import type { Output } from '../../streams/output-contract.js';
import type { Stream } from '../../streams/stream.js';
import { startPipeline } from '../pipeline-output.js';
import type { KindRequest, KindServices, OutputKind } from '../kind.js';
import { TsFanout, type Viewer, type ViewerStart } from './ts-fanout.js';

// MPEG-TS over HTTP (/live/<stream>.ts): one ffmpeg per stream writes MPEG-TS to its
// stdout, and the fan-out hands it to every viewer. The first viewer starts the output;
// it stops mpegtsHttp.idleStopSeconds after the last one leaves. A first viewer that asks
// for a backlog (ffmpeg's tools, see http/live.ts) has the ffmpeg start that far back, at
// a keyframe the media worker kept, with the seconds since sent at once (media/feed.ts):
// it has its picture as soon as when /live was already running.

export interface MpegtsHttpOptions {
  maxViewerBufferBytes: number;
  idleStopSeconds: number;
  /** Stream kept for viewers that ask for a backlog (ffmpeg's tools: see http/live.ts). */
  probeBacklogSeconds: number;
}

export class MpegtsHttpKind implements OutputKind {
  private readonly fanouts = new Map<Stream, TsFanout>();
  private readonly idleTimers = new Map<Stream, NodeJS.Timeout>();
  /** The backlog the viewer starting a stream's output asked for (read by start()). */
  private readonly startBacklog = new Map<Stream, number>();

  constructor(
    private readonly services: KindServices,
    private readonly options: MpegtsHttpOptions,
    /** Starts this type of output through the catalog (checks, events). */
    private readonly startOutput: (stream: Stream) => Promise<Output>,
  ) {}

  /** How far back ffmpeg's tools start (see http/live.ts). */
  get probeBacklogSeconds(): number {
    return this.options.probeBacklogSeconds;
  }

  start({ stream, definition, values, id, dir }: KindRequest): Output {
    const fanout = new TsFanout({ maxBufferedBytes: this.options.maxViewerBufferBytes, historySeconds: this.options.probeBacklogSeconds });
    this.fanouts.set(stream, fanout);
    const backlogSeconds = this.startBacklog.get(stream);
    this.startBacklog.delete(stream);
    if (backlogSeconds) fanout.startsWithBacklog();
    const output = startPipeline(stream, this.services, definition, dir, values, { id, stdout: fanout, urls: { stream: `/live/${stream.name}.ts` }, removeDirWhenDone: true, backlogSeconds });
    output.on('state', (s) => {
      if (s !== 'stopped' && s !== 'failed') return;
      fanout.closeViewers();
      if (this.fanouts.get(stream) === fanout) this.fanouts.delete(stream);
    });
    return output;
  }

  async addViewer(stream: Stream, viewer: Viewer, start: ViewerStart = {}): Promise<void> {
    clearTimeout(this.idleTimers.get(stream));
    this.idleTimers.delete(stream);
    if (!stream.outputs.has('mpegts-http')) {
      if (start.backlogSeconds) this.startBacklog.set(stream, start.backlogSeconds);
      try {
        await this.startOutput(stream);
      } finally {
        this.startBacklog.delete(stream);
      }
    }
    this.fanouts.get(stream)?.add(viewer, start);
  }

  removeViewer(stream: Stream, viewer: Viewer): void {
    const fanout = this.fanouts.get(stream);
    if (!fanout) return;
    fanout.remove(viewer);
    if (fanout.viewerCount > 0 || this.idleTimers.has(stream)) return;
    const timer = setTimeout(() => {
      this.idleTimers.delete(stream);
      if (this.fanouts.get(stream)?.viewerCount === 0) void stream.removeOutput('mpegts-http');
    }, this.options.idleStopSeconds * 1000);
    timer.unref();
    this.idleTimers.set(stream, timer);
  }

  close(): void {
    for (const t of this.idleTimers.values()) clearTimeout(t);
  }
}
