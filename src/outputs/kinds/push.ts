import { isIP } from 'node:net';
import type { Values } from '../../pipelines/definition.js';
import { renderSessionSdp } from '../../sdp/render.js';
import type { Output } from '../../streams/output-contract.js';
import { startPipeline } from '../pipeline-output.js';
import { sdpUrl, type KindRequest, type KindServices, type OutputKind } from '../kind.js';

// The generic kind: a pipeline that pushes to a URL (srt, udp, rtmp, and any new pipeline
// JSON with delivery "push") or sends RTP to a host and port (rtp-mpegts). Each output
// keeps its session SDP in its own folder, removed when it ends. Targets are checked
// again before every (re)start, and ffmpeg gets what was checked, so a name cannot be
// re-pointed between the check and the send: a host param becomes the checked address,
// a URL param the URL with the checked address in place of its host (or, for rtmp(s),
// the listed name that was checked: egress/allowed-targets.ts says why). An output with host and
// port also gets an SDP for players.

export class PushKind implements OutputKind {
  constructor(private readonly services: KindServices) {}

  start({ stream, definition, params, values, id, dir, targets }: KindRequest): Output {
    const hostPort = definition.params.host !== undefined && definition.params.port !== undefined;
    const host = String(params.host);
    const port = Number(params.port);
    const launchValues = targets.length === 0 ? undefined : async (): Promise<Values> => {
      const pinned: Values = {};
      for (const target of targets) {
        const { address, url } = await this.services.targets.pin(target.url);
        pinned[target.param] = target.param === 'host' && hostPort ? (isIP(address) === 6 ? `[${address}]` : address) : url;
      }
      return pinned;
    };
    return startPipeline(stream, this.services, definition, dir, values, {
      id,
      removeDirWhenDone: true,
      launchValues,
      ...(hostPort
        ? {
            urls: { sdp: sdpUrl(stream, id), vlc: `rtp://@${host}:${port}` },
            sdp: renderSessionSdp({ name: stream.name, address: host, media: [{ codec: 'mp2t', port, payloadType: 33, clockRate: 90000 }] }),
          }
        : {}),
    });
  }
}
