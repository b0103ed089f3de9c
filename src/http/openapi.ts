import { z } from 'zod';
import { iceServerSchema } from '../config/schema.js';
import { gatewayEvent } from '../events/event-schema.js';
import { rtpParams } from '../outputs/kinds/rtp.js';
import { paramsSchema, type PipelineDefinition } from '../pipelines/definition.js';
import { recordingInfo } from '../recordings/recordings.js';
import { NAME_PATTERN } from '../streams/names.js';
import { outputInfo } from '../streams/output-contract.js';
import { streamInfo, compositeMark } from '../streams/stream.js';
import { nodeInfo } from './cluster.js';
import { compositeInfo, compositePatch, compositeRequest } from '../composites/schemas.js';
import { encoderInfo, trackInfo } from '../streams/track-view.js';
import type { RouteRule } from './access.js';
import { health } from './api.js';
import { errorBody } from './errors.js';

// The OpenAPI 3.1 description of the gateway's HTTP API, served at /api/openapi.json.
// Its schemas are generated from the zod schemas the code's own types come from: request
// bodies from the ones that check them (the pipeline JSONs' params, rtp's), response
// bodies from the ones whose z.infer types the handlers return, so a handler cannot send
// a property the document lacks without a type error. test/integration/outputs-api.test.ts
// checks the paths against the routes the app really has, and openapi-live.test.ts the
// schemas against what a live gateway answers. The right each operation needs, and its
// security, come from the app's route rules.

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
        'WHIP ingest from browsers; WHEP (real-time WebRTC playback), HLS, MPEG-TS, RTP, pushes, recordings and snapshots out. Errors under /api/ are JSON {error, message}; elsewhere plain text, one line. ' +
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
            '307': text('in a cluster, this node has no room (cluster.maxSessions, cluster.maxCpuPercent): Location is the same request on the least-loaded node that has (RFC 9725 §4.5)'),
            '503': text('the gateway is stopping, could not gather an ICE candidate (ports), is full with no node of its cluster having room, or cannot reach its cluster (Retry-After)'),
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
      '/whep/{stream}': {
        post: {
          summary: 'Watch in real time: WHEP offer (draft-ietf-wish-whep), recvonly audio and video',
          parameters: [param('stream', 'stream name')],
          requestBody: { required: true, content: { 'application/sdp': { schema: { type: 'string' } } } },
          responses: {
            '201': { description: "SDP answer (sendonly sections: the publisher's H.264 or VP8/VP9 and Opus as sent); Location and ETag headers name the viewer's session; Accept-Patch: application/trickle-ice-sdpfrag. A section the viewer gets nothing in is answered with port 0 and its reason as i=", content: { 'application/sdp': { schema: { type: 'string' } } } },
            '400': text('bad SDP; no section that receives audio or video; more than 8 m-sections or 64 candidates; sections not bundled'),
            '404': text('no stream of that name is being published'),
            '406': text("nothing in the offer can receive the stream's codecs"),
            '413': text('body too large'),
            '415': text('Content-Type is not application/sdp'),
            '503': text('whep.maxViewersPerStream or whep.maxViewers reached (Retry-After), or the gateway cannot answer now'),
          },
        },
      },
      '/whep/{stream}/{viewer}': {
        delete: { summary: 'End a WHEP viewer session', parameters: [param('stream', 'stream name'), param('viewer', 'viewer session id')], responses: { '200': { description: 'ended' }, '404': text('unknown viewer session') } },
        patch: {
          summary: 'Trickle ICE and ICE restart of a WHEP viewer, as for WHIP',
          description: 'If-Match: the ETag of the current ICE session for candidates, * for a restart; required (428) only when the fragment has no a=ice-ufrag either',
          parameters: [param('stream', 'stream name'), param('viewer', 'viewer session id')],
          requestBody: { required: true, content: { 'application/trickle-ice-sdpfrag': { schema: { type: 'string' } } } },
          responses: {
            '200': { description: "ICE restarted: the gateway's new ice-ufrag, ice-pwd and candidates; a new ETag", content: { 'application/trickle-ice-sdpfrag': { schema: { type: 'string' } } } },
            '204': { description: 'candidates added' },
            '400': text('not an SDP fragment, a malformed candidate or credentials, more than 64 candidates in one ICE session'),
            '404': text('unknown viewer session'),
            '412': text('If-Match names an ICE session restarted since (the response carries the current ETag), or the fragment has the ice-ufrag of one'),
            '415': text('Content-Type is not application/trickle-ice-sdpfrag'),
            '422': text('a candidate names a section (a=mid) the session does not have'),
            '428': text('neither If-Match nor a=ice-ufrag'),
          },
        },
      },
      '/api/ice-servers': { get: { summary: 'ICE servers for browser clients (fresh TURN credentials)', responses: { '200': json('RTCIceServer list', { type: 'array', items: ref('IceServer') }) } } },
      '/api/streams': { get: { summary: "Live streams (in a cluster: every node's, each with its node)", responses: { '200': json('streams', { type: 'array', items: ref('Stream') }), '503': text("in a cluster: its directory (Redis) cannot be reached") } } },
      '/api/cluster/nodes': { get: { summary: 'The nodes of the cluster with their load and streams, up or gone (alone: this gateway)', responses: { '200': json('nodes', { type: 'array', items: ref('Node') }), '503': text("its directory (Redis) cannot be reached") } } },
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
          responses: { '201': json('the new output', ref('Output')), '400': text('unknown type or bad parameter (named)'), '404': text('unknown stream'), '409': text('the stream already has this output'), '415': text('Content-Type is not application/json'), '507': text('record: not enough free disk space (recordings.minFreeMB)') },
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
      '/api/composites': {
        get: { summary: 'Composites (calls broadcast as one programme)', responses: { '200': json('composites', { type: 'array', items: ref('Composite') }) } },
        post: {
          summary: 'Create a composite: a stream named `name` composed from the live streams matching `streams`',
          requestBody: { required: true, content: { 'application/json': { schema: ref('CompositeRequest') } } },
          responses: { '201': json('the new composite', ref('Composite')), '400': text('a bad field (named)'), '409': text('the name is taken (a composite or a stream being published), or more streams match than composites.maxParticipants'), '415': text('Content-Type is not application/json'), '503': text('composites.maxConcurrent composites exist already') },
        },
      },
      '/api/composites/{name}': {
        get: { summary: 'One composite', parameters: [streamParam], responses: { '200': json('composite', ref('Composite')), '404': text('unknown composite') } },
        patch: {
          summary: 'Change layout, streams or size (a new compositor takes over at its first keyframe; the playlist goes on)',
          parameters: [streamParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref('CompositePatch') } } },
          responses: { '200': json('the composite', ref('Composite')), '400': text('a bad field (named)'), '404': text('unknown composite'), '409': text('more streams would match than composites.maxParticipants'), '415': text('Content-Type is not application/json') },
        },
        delete: { summary: 'Delete a composite and end its stream', parameters: [streamParam], responses: { '204': { description: 'deleted' }, '404': text('unknown composite') } },
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
      '/healthz': { get: { summary: 'Health', responses: { '200': json('health', ref('Health')) } } },
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
        ...responseSchemas([...definitions.keys(), 'rtp'].sort()),
        OutputRequest: outputRequest(definitions),
        CompositeRequest: requestSchema(compositeRequest),
        CompositePatch: requestSchema(compositePatch),
      },
    },
  };
  annotate(doc.paths as Record<string, Record<string, Json>>, rules);
  return doc;
}

/**
 * The response bodies' schemas, under the names the document has always given them
 * (clients generate code from them). A schema used inside another is referred to by name.
 */
const RESPONSES = { Node: nodeInfo, Stream: streamInfo, CompositeMark: compositeMark, Composite: compositeInfo, Track: trackInfo, Encoder: encoderInfo, Output: outputInfo, Recording: recordingInfo, Event: gatewayEvent, Health: health, IceServer: iceServerSchema, Error: errorBody };

function responseSchemas(outputTypes: string[]): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(RESPONSES)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    uri: (id) => `#/components/schemas/${id}`,
    override: ({ zodSchema, jsonSchema }) => {
      // Which output types there are is known only at run time: the pipelines loaded, and rtp.
      if (zodSchema === outputInfo.shape.type) jsonSchema.enum = outputTypes;
      // What zod adds that says nothing `integer` and `format: date-time` do not.
      if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      if (jsonSchema.format === 'date-time') delete jsonSchema.pattern;
    },
  });
  return Object.fromEntries(Object.entries(schemas).map(([id, { $schema: _, $id: __, ...schema }]) => [id, schema]));
}

/** A request body's schema, from the zod schema that checks it. */
function requestSchema(schema: z.ZodType): Json {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  return json;
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
