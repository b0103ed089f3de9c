import { matchesPattern } from '../config/wildcard.js';
import type { Config } from '../config/schema.js';
import type { StreamRegistry } from '../streams/registry.js';
import type { Stream } from '../streams/stream.js';
import type { OutputCatalog } from './catalog.js';
import type { ResumeOutputs } from './resume.js';

// The outputs no one has to ask for: HLS for every stream (hls.auto), started with the
// answer rather than when ICE/DTLS has connected (ffmpeg takes 0.2-0.5 s to start, and is
// then already listening when the publisher's first keyframe comes); and, once the stream
// is live, the outputs the configuration declares for its name and those that waited for
// this publisher's return.

export function autostartOutputs(registry: StreamRegistry, catalog: OutputCatalog, resume: ResumeOutputs, config: Config): void {
  registry.on('stream', (stream) => {
    if (config.hls.auto) void startHls(stream);
    stream.once('live', () => void startConfigured(stream));
  });

  async function startHls(stream: Stream): Promise<void> {
    try {
      const { segmentSeconds, listSize, lowLatency, segmentFormat, audio } = config.hls;
      await catalog.start(stream, 'hls', { segmentSeconds, listSize, lowLatency, segmentFormat, audio });
    } catch (e) {
      if (!stream.closed) stream.log.error({ event: 'output-config-error', type: 'hls', error: (e as Error).message }, 'automatic hls output could not start');
    }
  }

  async function startConfigured(stream: Stream): Promise<void> {
    for (const o of config.outputs.filter((x) => matchesPattern(x.streams, stream.name))) {
      try {
        await catalog.start(stream, o.type, o.params);
      } catch (e) {
        stream.log.error({ event: 'output-config-error', type: o.type, error: (e as Error).message }, `configured ${o.type} output could not start`);
      }
    }
    await resume.resume(stream);
  }
}
