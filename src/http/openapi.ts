import { EVENT_TYPES } from '../events/bus.js';
import { NAME_PATTERN } from '../streams/names.js';
import { OUTPUT_STATES } from '../streams/output-contract.js';
import { z } from 'zod';
import { rtpParams } from '../outputs/kinds/rtp.js';
import { paramsSchema, type PipelineDefinition } from '../pipelines/definition.js';
import type { RouteRule } from './access.js';

// The OpenAPI 3.1 description of the gateway's HTTP API, served at /api/openapi.json.
// test/integration/outputs-api.test.ts checks it against the routes the app really has.
// The right each operation needs, and its security, come from the app's route rules.

type Json = Record<string, unknown>;

const text = (description: string): Json => ({ description, content: { 'text/plain': { schema: { type: 'string' } } } });
const json = (description: string, schema: Json): Json => ({ description, content: { 'application/json': { schema } } });
const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const param = (name: string, description: string): Json => ({ name, in: 'path', required: true, description, schema: { type: 'string' } });
const streamParam = param('name', `stream name, ${NAME_PATTERN}`);

export function openApiDocument(definitions: Map<string, PipelineDefinition>, rules: RouteRule[] = []): Json {
  const doc = {
    openapi: '3.1.0',
    info: {
      title: 'webrtc-rtp-gateway',
      version: '0.1.0',
      description:
        'WHIP ingest from browsers; HLS, MPEG-TS, RTP, pushes, recordings and snapshots out. Errors under /api/ are JSON {error, message}; elsewhere plain text, one line. ' +
        'When the gateway has credentials configured, each operation needs the right named in x-right (publish, read, control; metrics for /metrics), as a Bearer token, or as ?token= where players cannot send headers.',
    },
    paths: {
      '/whip/{stream}': {
        post: {
          summary: 'Publish: WHIP offer (RFC 9725)',
          parameters: [param('stream', 'stream name')],
          requestBody: { required: true, content: { 'application/sdp': { schema: { type: 'string' } } } },
          responses: {
            '201': { description: 'SDP answer; Location and ETag headers name the session (the ETag its current ICE session); Accept-Patch: application/trickle-ice-sdpfrag. A section left out is answered with port 0 and its reason as i=', content: { 'application/sdp': { schema: { type: 'string' } } } },
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
        patch: {
          summary: 'Trickle ICE and ICE restart (RFC 9725 §4.3): candidates gathered after the offer, or new ICE credentials',
          description: 'If-Match: the ETag of the current ICE session for candidates, * for a restart; required (428) only when the fragment has no a=ice-ufrag either',
          parameters: [param('stream', 'stream name'), param('session', 'session id')],
          requestBody: { required: true, content: { 'application/trickle-ice-sdpfrag': { schema: { type: 'string' } } } },
          responses: {
            '200': { description: "ICE restarted: the gateway's new ice-ufrag, ice-pwd and candidates; a new ETag. The session, its outputs and HLS playlist go on", content: { 'application/trickle-ice-sdpfrag': { schema: { type: 'string' } } } },
            '204': { description: 'candidates added' },
            '400': text('not an SDP fragment, a malformed candidate or credentials, more than 64 candidates in one ICE session'),
            '404': text('unknown session'),
            '412': text('If-Match names an ICE session restarted since (the response carries the current ETag), or the fragment has the ice-ufrag of one'),
            '415': text('Content-Type is not application/trickle-ice-sdpfrag'),
            '422': text('a candidate names a section (a=mid) the session does not have'),
            '428': text('neither If-Match nor a=ice-ufrag'),
          },
        },
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
      '/metrics': { get: { summary: 'Prometheus metrics (streams, outputs, packets, loss, NACKs, keyframe requests, ffmpeg restarts, ICE connect time, event-loop lag)', responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': {} } } } } },
      '/live/{file}': { get: { summary: 'MPEG-TS over HTTP: /live/<stream>.ts (starts on demand)', parameters: [param('file', '<stream>.ts')], responses: { '200': { description: 'endless MPEG-TS', content: { 'video/mp2t': {} } }, '404': text('no live stream') } } },
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'a static token, a JWT, or a token the auth hook accepts' },
        queryToken: { type: 'apiKey', in: 'query', name: 'token', description: 'for players, which cannot send headers (HLS, /live)' },
      },
      schemas: {
        Error: { type: 'object', required: ['error', 'message'], properties: { error: { type: 'string', examples: ['not-found'] }, message: { type: 'string' } } },
        Stream: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            session: { type: 'string' },
            state: { enum: ['connecting', 'live', 'closed'] },
            startedAt: { type: 'string', format: 'date-time' },
            tracks: { type: 'array', items: ref('Track') },
            outputs: { type: 'array', items: ref('Output') },
            keyframeRequests: { type: 'integer', description: 'keyframe requests (PLI) sent to the publisher' },
            worker: { type: 'integer', description: 'the media worker thread the session runs on' },
            iceRestarts: { type: 'integer', description: 'ICE restarts of the session (WHIP PATCH or WebSocket restart): a publisher whose network changed goes on in the same session' },
            ignoredMedia: {
              type: 'array',
              description: 'sections the publisher offered to send that the gateway left out of the session (answered with port 0): a section with no acceptable codec while another is usable, a second section of a kind already taken, port 0 without a=bundle-only',
              items: { type: 'object', required: ['kind', 'reason'], properties: { mid: { type: 'string' }, kind: { type: 'string' }, reason: { type: 'string' } } },
            },
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
            codec: { enum: ['H264', 'VP8', 'VP9', 'opus', 'PCMU', 'PCMA'] },
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
            transcoded: { type: 'boolean', description: 'VP8/VP9 video: outputs get it transcoded to H.264, once for the stream' },
            encoder: {
              type: 'object',
              description: 'the ffmpeg that makes the stream\'s H.264 (VP8/VP9 video) or AAC from this track, once for all outputs, after the first output that needed it',
              properties: {
                pipeline: { type: 'string', description: 'pipelines/shared/<pipeline>.json: h264 or aac' },
                state: { enum: ['starting', 'running', 'stopped'] },
                cpuPercent: { type: 'number', description: 'its share of one core over the last 2 s' },
                restarts: { type: 'integer', description: 'started again after ffmpeg died' },
                resizes: { type: 'integer', description: 'started again for a new picture size from the publisher' },
              },
            },
            lost: { type: 'integer', description: 'packets given up on (lost and not repaired by retransmission)' },
            nacked: { type: 'integer', description: 'packets the gateway asked the publisher to send again (NACK)' },
            keyframeIntervalSeconds: { type: 'number', description: "video: the publisher's own keyframe spacing, learned from the keyframes it sent unasked (absent until known; browsers have none: they send keyframes when asked)" },
            answersKeyframeRequests: { type: 'boolean', description: 'video: whether the publisher answers keyframe requests (PLI); one that does not (a fixed GOP: OBS, ffmpeg, hardware encoders) is asked at most once per its interval, and HLS segments follow its GOP' },
          },
        },
        Output: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            type: { enum: [...definitions.keys(), 'rtp'].sort() },
            state: { enum: [...OUTPUT_STATES] },
            startedAt: { type: 'string', format: 'date-time' },
            uptimeSeconds: { type: 'integer' },
            bytesOut: { type: 'integer' },
            restarts: { type: 'integer' },
            error: { type: 'string', description: "ffmpeg's last error lines" },
            urls: { type: 'object', additionalProperties: { type: 'string' } },
          },
        },
        OutputRequest: outputRequest(definitions),
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
            type: { enum: [...EVENT_TYPES] },
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
  annotate(doc.paths as Record<string, Record<string, Json>>, rules);
  return doc;
}

/** One schema per output type, from the same zod schemas that check requests: the pipeline JSONs' params, and rtp's. */
function outputRequest(definitions: Map<string, PipelineDefinition>): Json {
  const schema = (type: string, description: string, params: z.ZodObject): Json => {
    const { $schema: _, ...json } = z.toJSONSchema(params.extend({ type: z.literal(type) }), { io: 'input', unrepresentable: 'any' });
    return { title: type, description, ...json };
  };
  const types = [...definitions.values()].map((d) => schema(d.type, d.description, paramsSchema(d)));
  types.push(schema('rtp', 'The publisher\'s RTP forwarded as it is (no ffmpeg; a VP8/VP9 publisher\'s video as the stream\'s H.264 unless videoCodec is original), with an SDP for the player; give videoPort, audioPort or both.', rtpParams));
  return { oneOf: types.sort((a, b) => String(a.title).localeCompare(String(b.title))), discriminator: { propertyName: 'type' } };
}

const PLAYER_ROUTES = ['/hls/', '/live/'];

/** API errors are JSON; each operation gets the right it needs and the refusals that come with it. */
function annotate(paths: Record<string, Record<string, Json>>, rules: RouteRule[]): void {
  const error = (description: string) => json(description, ref('Error'));
  for (const [p, ops] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const responses = op.responses as Record<string, Json>;
      if (p.startsWith('/api/')) {
        for (const [code, r] of Object.entries(responses)) if ((r.content as Json | undefined)?.['text/plain']) responses[code] = error(r.description as string);
      }
      const rule = rules.find((r) => r.method === method.toUpperCase() && r.path === p.replace(/\{(\w+)\}/g, ':$1'));
      if (!rule || rule.action === 'public') {
        op.security = [];
        continue;
      }
      op['x-right'] = rule.action;
      op.security = [{ bearer: [] }, ...(PLAYER_ROUTES.some((r) => p.startsWith(r)) ? [{ queryToken: [] }] : [])];
      const refusal = p.startsWith('/api/') ? error : text;
      responses['401'] ??= refusal('no credentials, or ones the gateway does not know (credentials configured)');
      responses['403'] ??= refusal(`the credentials do not carry the ${rule.action} right${p.includes('{') ? ' for this stream' : ''}`);
      responses['429'] ??= refusal('too many failed attempts from this address: wait Retry-After seconds');
    }
  }
}
