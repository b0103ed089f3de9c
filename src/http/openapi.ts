// The OpenAPI 3.1 description of the gateway's HTTP API, served at /api/openapi.json.
// test/integration/openapi.test.ts checks it against the routes the app really has.

type Json = Record<string, unknown>;

const text = (description: string): Json => ({ description, content: { 'text/plain': { schema: { type: 'string' } } } });
const json = (description: string, schema: Json): Json => ({ description, content: { 'application/json': { schema } } });
const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const param = (name: string, description: string): Json => ({ name, in: 'path', required: true, description, schema: { type: 'string' } });
const streamParam = param('name', 'stream name, [A-Za-z0-9_-]{1,64}');

export function openApiDocument(outputTypes: string[]): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'webrtc-rtp-gateway',
      version: '0.1.0',
      description: 'WHIP ingest from browsers; HLS, MPEG-TS, RTP, pushes, recordings and snapshots out. Errors are plain text, one line.',
    },
    paths: {
      '/whip/{stream}': {
        post: {
          summary: 'Publish: WHIP offer (RFC 9725)',
          parameters: [param('stream', 'stream name')],
          requestBody: { required: true, content: { 'application/sdp': { schema: { type: 'string' } } } },
          responses: {
            '201': { description: 'SDP answer; Location and ETag headers name the session', content: { 'application/sdp': { schema: { type: 'string' } } } },
            '400': text('bad SDP or stream name; more than 8 m-sections or 64 candidates; sections not bundled'),
            '406': text('no acceptable codec offered'),
            '409': text('stream already being published (an offer that has not connected yet is replaced instead)'),
            '413': text('body too large'),
            '415': text('Content-Type is not application/sdp'),
            '429': text('too many offers from this address still connecting (streams.maxConnectingPerAddress)'),
            '503': text('the gateway is stopping, or could not gather an ICE candidate (ports)'),
          },
        },
      },
      '/whip/{stream}/{session}': {
        delete: { summary: 'End a WHIP session', parameters: [param('stream', 'stream name'), param('session', 'session id')], responses: { '200': { description: 'ended' }, '404': text('unknown session') } },
        patch: { summary: 'Trickle ICE (not supported)', parameters: [param('stream', 'stream name'), param('session', 'session id')], responses: { '405': text('trickle ICE is not supported') } },
      },
      '/api/ice-servers': { get: { summary: 'ICE servers for browser clients (fresh TURN credentials)', responses: { '200': json('RTCIceServer list', { type: 'array', items: { type: 'object' } }) } } },
      '/api/streams': { get: { summary: 'Live streams', responses: { '200': json('streams', { type: 'array', items: ref('Stream') }) } } },
      '/api/streams/{name}': {
        get: { summary: 'One stream', parameters: [streamParam], responses: { '200': json('stream', ref('Stream')), '404': text('unknown stream') } },
        delete: { summary: 'Disconnect the publisher and end its outputs (they do not wait for a return)', parameters: [streamParam], responses: { '204': { description: 'disconnected' }, '404': text('unknown stream') } },
      },
      '/api/streams/{name}/outputs': {
        get: { summary: "A stream's outputs", parameters: [streamParam], responses: { '200': json('outputs', { type: 'array', items: ref('Output') }), '404': text('unknown stream') } },
        post: {
          summary: 'Start an output',
          parameters: [streamParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref('OutputRequest') } } },
          responses: { '201': json('the new output', ref('Output')), '400': text('unknown type or bad parameter (named)'), '404': text('unknown stream'), '409': text('the stream already has this output'), '507': text('record: not enough free disk space (recordings.minFreeMB)') },
        },
      },
      '/api/streams/{name}/outputs/{id}': {
        get: { summary: 'One output', parameters: [streamParam, param('id', 'output id')], responses: { '200': json('output', ref('Output')), '404': text('unknown output') } },
        delete: { summary: 'Stop an output (files are finalised)', parameters: [streamParam, param('id', 'output id')], responses: { '204': { description: 'stopped' }, '404': text('unknown output') } },
      },
      '/api/streams/{name}/outputs/{id}/sdp': {
        get: { summary: 'SDP for an rtp or rtp-mpegts output (open with VLC or ffplay)', parameters: [streamParam, param('id', 'output id')], responses: { '200': { description: 'session SDP', content: { 'application/sdp': { schema: { type: 'string' } } } }, '404': text('no such rtp output') } },
      },
      '/api/streams/{name}/snapshot.jpg': {
        get: { summary: 'Current picture as JPEG', parameters: [streamParam], responses: { '200': { description: 'JPEG', content: { 'image/jpeg': {} } }, '400': text('stream has no video'), '404': text('unknown stream'), '503': text('no picture in time') } },
      },
      '/api/recordings': { get: { summary: 'Recordings', responses: { '200': json('recordings', { type: 'array', items: ref('Recording') }) } } },
      '/api/recordings/{stream}/{file}': {
        delete: { summary: 'Delete a recording and all its parts', parameters: [param('stream', 'stream name'), param('file', 'file name (the first part)')], responses: { '204': { description: 'deleted' }, '404': text('no such recording'), '409': text('still being written: stop its record output first') } },
      },
      '/recordings/{stream}/{file}': {
        get: { summary: 'Download a recording (Range supported)', parameters: [param('stream', 'stream name'), param('file', 'file name')], responses: { '200': { description: 'MP4 or MKV' }, '206': { description: 'partial content' }, '404': text('no such recording') } },
      },
      '/api/events': { get: { summary: 'Gateway events as server-sent events', responses: { '200': { description: 'text/event-stream of Event', content: { 'text/event-stream': { schema: ref('Event') } } } } } },
      '/api/openapi.json': { get: { summary: 'This document', responses: { '200': json('OpenAPI document', { type: 'object' }) } } },
      '/healthz': { get: { summary: 'Health', responses: { '200': json('health', { type: 'object', properties: { status: { const: 'ok' }, streams: { type: 'integer' }, ffmpegProcesses: { type: 'integer' } } }) } } },
      '/hls/{stream}/{file}': { get: { summary: 'HLS playlist (index.m3u8) and segments', parameters: [param('stream', 'stream name'), param('file', 'index.m3u8 or a segment')], responses: { '200': { description: 'playlist or segment' }, '404': text('not found') } } },
      '/live/{file}': { get: { summary: 'MPEG-TS over HTTP: /live/<stream>.ts (starts on demand)', parameters: [param('file', '<stream>.ts')], responses: { '200': { description: 'endless MPEG-TS', content: { 'video/mp2t': {} } }, '404': text('no live stream') } } },
    },
    components: {
      schemas: {
        Stream: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            session: { type: 'string' },
            state: { enum: ['connecting', 'live', 'closed'] },
            startedAt: { type: 'string', format: 'date-time' },
            tracks: { type: 'array', items: ref('Track') },
            outputs: { type: 'array', items: ref('Output') },
            ice: { type: 'object', description: 'selected ICE candidate pair' },
            sender: {
              type: 'object',
              description: "what the publisher's browser says it sends (its getStats(), reported by the built-in publish page within the last 10 s)",
              properties: {
                frameWidth: { type: 'integer' },
                frameHeight: { type: 'integer' },
                framesPerSecond: { type: 'number' },
                bitrateKbps: { type: 'number' },
                targetKbps: { type: 'number', description: "the encoder's target" },
                availableKbps: { type: 'number', description: "the browser's bandwidth estimate" },
                qualityLimitationReason: { enum: ['none', 'bandwidth', 'cpu', 'other'] },
                ageSeconds: { type: 'integer' },
              },
            },
          },
        },
        Track: {
          type: 'object',
          properties: {
            kind: { enum: ['audio', 'video'] },
            codec: { enum: ['H264', 'opus', 'PCMU', 'PCMA'] },
            payloadType: { type: 'integer' },
            clockRate: { type: 'integer' },
            channels: { type: 'integer' },
            packets: { type: 'integer' },
            bytes: { type: 'integer' },
            bitrateKbps: { type: 'integer' },
            keyframes: { type: 'integer' },
            width: { type: 'integer' },
            height: { type: 'integer' },
            fps: { type: 'integer', description: 'video: frames per second arriving at the gateway' },
            lost: { type: 'integer', description: 'packets given up on (lost and not repaired by retransmission)' },
          },
        },
        Output: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            type: { enum: outputTypes },
            state: { enum: ['starting', 'running', 'restarting', 'stopped', 'failed', 'waiting'] },
            startedAt: { type: 'string', format: 'date-time' },
            uptimeSeconds: { type: 'integer' },
            bytesOut: { type: 'integer' },
            restarts: { type: 'integer' },
            error: { type: 'string', description: "ffmpeg's last error lines" },
            urls: { type: 'object', additionalProperties: { type: 'string' } },
          },
        },
        OutputRequest: {
          type: 'object',
          required: ['type'],
          properties: {
            type: { enum: outputTypes },
            segmentSeconds: { type: 'number', description: 'hls' },
            listSize: { type: 'integer', description: 'hls' },
            segmentFormat: { enum: ['mpegts', 'fmp4'], description: 'hls' },
            format: { enum: ['mp4', 'mkv'], description: 'record' },
            maxDurationSeconds: { type: 'number', description: 'record' },
            url: { type: 'string', description: 'srt://, udp://, rtmp:// or rtmps:// target (srt, udp, rtmp)' },
            host: { type: 'string', description: 'rtp, rtp-mpegts: where to send' },
            videoPort: { type: 'integer', description: 'rtp: even port for video' },
            audioPort: { type: 'integer', description: 'rtp: even port for audio' },
            port: { type: 'integer', description: 'rtp-mpegts: even port' },
          },
        },
        Recording: {
          type: 'object',
          properties: {
            stream: { type: 'string' },
            file: { type: 'string' },
            url: { type: 'string' },
            bytes: { type: 'integer' },
            startedAt: { type: 'string', format: 'date-time' },
            endedAt: { type: ['string', 'null'], format: 'date-time' },
            durationSeconds: { type: ['number', 'null'] },
            state: { enum: ['recording', 'finished', 'failed', 'interrupted'] },
            error: { type: 'string', description: 'why it failed (e.g. disk full) or was interrupted' },
            parts: {
              type: 'array',
              description: 'one file per run of the recording ffmpeg (more than one when it had to be started again)',
              items: { type: 'object', properties: { file: { type: 'string' }, url: { type: 'string' }, bytes: { type: 'integer' }, durationSeconds: { type: ['number', 'null'] } } },
            },
          },
        },
        Event: {
          type: 'object',
          properties: {
            type: { enum: ['stream.started', 'stream.stopped', 'output.started', 'output.stopped', 'output.failed', 'recording.finished'] },
            at: { type: 'string', format: 'date-time' },
            stream: { type: 'string' },
            session: { type: 'string' },
            output: { type: 'object' },
            recording: ref('Recording'),
            reason: { type: 'string' },
          },
        },
      },
    },
  };
}
