import { isIP } from 'node:net';
import type { Values } from '../../pipelines/definition.js';
import { renderSessionSdp } from '../../sdp/render.js';
import type { Output } from '../../streams/output.js';
import { startPipeline } from '../pipeline-output.js';
import { sdpUrl, type KindRequest, type KindServices, type OutputKind } from '../kind.js';

// The generic kind: a pipeline that pushes to a URL (srt, udp, rtmp, and any new pipeline
// JSON with delivery "push") or sends RTP to a host and port (rtp-mpegts). Each output
// keeps its session SDP in its own folder, removed when it ends. Targets are checked
// again before every (re)start; one with host and port gets the address that was checked,
// so a name cannot be re-pointed between the check and the send, and an SDP for players.

export class PushKind implements OutputKind {
  constructor(private readonly services: KindServices) {}

  start({ stream, definition, params, values, id, dir, targets }: KindRequest): Output {
    const hostPort = definition.params.host !== undefined && definition.params.port !== undefined;
    const host = String(params.host);
    const port = Number(params.port);
    const launchValues = targets.length === 0 ? undefined : async (): Promise<Values> => {
      const checked = [];
      for (const url of targets) checked.push(await this.services.targets.check(url));
      if (!hostPort) return {};
      const address = checked[checked.length - 1][0];
      return { host: isIP(address) === 6 ? `[${address}]` : address };
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
