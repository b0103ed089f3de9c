import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { ACTIONS } from '../auth/permissions.js';
import { EVENT_TYPES } from '../events/event-types.js';
import { targetEntryProblem } from '../egress/allowed-targets.js';
import { MAX_PATTERN_LENGTH } from './wildcard.js';

// The one place where every setting and its default lives. A config file, environment
// variables and CLI flags override these (see load.ts); `config.example.yaml` at the
// repository root documents every key and a unit test keeps it in step with this schema.

const port = z.number().int().min(1).max(65535);
/** Stream name or pattern with * wildcards (bounded: patterns also come from JWTs, and every request matches them). */
const streamPattern = z.string().min(1).max(MAX_PATTERN_LENGTH);

/**
 * A composite as a client asks for it (POST /api/composites) or the configuration declares
 * it: its stream name, the streams in it (names or * patterns), its layout, picture size
 * and frame rate.
 */
export const compositeSpec = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'stream name must be 1-64 characters of A-Z, a-z, 0-9, "_" or "-"'),
    streams: z.array(streamPattern).min(1).max(32).describe('stream names or * patterns: every live stream that matches joins, in the order it joined'),
    layout: z.enum(['grid', 'speaker']).default('grid').describe('grid: equal tiles in join order; speaker: the participant speaking fills the main area, the others a strip below'),
    width: z.number().int().min(160).max(3840).multipleOf(2).default(1280),
    height: z.number().int().min(90).max(2160).multipleOf(2).default(720),
    fps: z.number().int().min(5).max(60).default(30),
  })
  .strict();
export type CompositeSpec = z.infer<typeof compositeSpec>;

const permission = z
  .object({
    action: z.enum(ACTIONS),
    /** Stream name or pattern with * wildcards. */
    streams: streamPattern.default('*'),
  })
  .strict();
/** A cap on open connections of one kind: in total (0 only where the gateway picks it) and per client address. */
function cap(total: number, perAddress: number) {
  return z
    .object({
      total: z.number().int().min(total === 0 ? 0 : 1).max(1_000_000).default(total),
      perAddress: z.number().int().min(1).max(1_000_000).default(perAddress),
    })
    .strict()
    .prefault({});
}

/** 0 = any free port (tests). */
const listenPort = z.number().int().min(0).max(65535);

export const iceServerSchema = z.object({
  urls: z.union([z.string(), z.array(z.string()).min(1)]),
  username: z.string().optional(),
  credential: z.string().optional(),
});

export const configSchema = z
  .object({
    http: z
      .object({
        /**
         * Address the HTTP server listens on. Loopback by default: on any other address
         * the gateway needs credentials (auth) or auth.mode: none.
         */
        host: z.string().min(1).default('127.0.0.1'),
        port: listenPort.default(8080),
        /**
         * Origins whose pages may call WHIP, the API and HLS (CORS). Unset: any ('*')
         * while auth is off, none but the gateway's own pages while it is on.
         */
        corsOrigins: z.array(z.string().min(1)).optional(),
        /** Serve HTTPS and WSS with this certificate and key (PEM files, reloaded when they change). */
        tls: z.object({ cert: z.string().min(1), key: z.string().min(1) }).strict().optional(),
        /** Largest accepted request body (SDP offers are a few KB). */
        maxBodyBytes: z.number().int().min(1024).max(10_000_000).default(128 * 1024),
      })
      .strict()
      .prefault({}),
    /** Folder for HLS output, recordings and outputs' session SDP files. */
    dataDir: z.string().min(1).default('./data'),
    ffmpeg: z
      .object({
        /** ffmpeg binary (on PATH or absolute). */
        path: z.string().min(1).default('ffmpeg'),
        /** A stopping ffmpeg gets SIGINT (it finishes its files), then SIGKILL after this many ms. */
        stopTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
        /** ffprobe binary (recording durations). */
        ffprobePath: z.string().min(1).default('ffprobe'),
      })
      .strict()
      .prefault({}),
    rtp: z
      .object({
        /** Loopback UDP ports for ffmpeg inputs (two per track and output: RTP even, RTCP odd). */
        portMin: port.default(20000),
        portMax: port.default(29999),
      })
      .strict()
      .prefault({})
      .refine((r) => r.portMax - r.portMin >= 3, { message: 'rtp.portMax must be at least portMin + 3' }),
    ice: z
      .object({
        /** Local IPs to gather host candidates on; empty = every interface (IPv4, and IPv6 when enabled). */
        addresses: z.array(z.string().refine((a) => isIP(a) !== 0, 'must be an IP address')).default([]),
        /** Gather IPv6 host candidates when `addresses` is empty. */
        ipv6: z.boolean().default(false),
        /** STUN/TURN servers for the gateway's peers and its clients; none by default (the gateway never calls out unasked). */
        servers: z.array(iceServerSchema).default([]),
        /** TURN URLs whose credentials are made per session from `turnSecret` (coturn use-auth-secret, TURN REST API). */
        turnUrls: z.array(z.string().regex(/^turns?:/, 'must start with turn: or turns:')).default([]),
        /** Shared secret for time-limited TURN credentials (coturn static-auth-secret). */
        turnSecret: z.string().min(1).optional(),
        /**
         * Whether the gateway's own peers also allocate TURN relays. A gateway with a public
         * (or 1:1 NAT) address never needs one; clients always get the TURN servers.
         */
        turnForGateway: z.boolean().default(true),
        /** How long generated TURN credentials stay valid. */
        turnCredentialTtlSeconds: z.number().int().min(60).max(7 * 86_400).default(86_400),
        /** Public address(es) to advertise as host candidates when the gateway is behind a 1:1 NAT (Janus nat_1_1_mapping). */
        publicAddresses: z.array(z.string().refine((a) => isIP(a) !== 0, 'must be an IP address')).default([]),
        /** Also offer passive ICE-TCP candidates, for networks that block UDP. */
        tcp: z.boolean().default(false),
        /** UDP port range for ICE, e.g. [40000, 40999]; unset = any free port. */
        portRange: z.tuple([port, port]).optional(),
        /** A publisher that has not connected after this many ms is dropped (browsers take 0.2-3 s). */
        connectTimeoutMs: z.number().int().min(1000).max(120_000).default(10_000),
        /** A publisher disconnected for this many ms is dropped (ICE 'disconnected' may recover). */
        disconnectTimeoutMs: z.number().int().min(500).max(60_000).default(5000),
        /** A connected publisher that sends no RTP for this many ms is dropped (browser gone without a word). */
        mediaTimeoutMs: z.number().int().min(1000).max(120_000).default(5000),
      })
      .strict()
      .prefault({})
      .refine((i) => i.turnUrls.length === 0 || i.turnSecret !== undefined, { message: 'ice.turnUrls needs ice.turnSecret' }),
    video: z
      .object({
        /**
         * Most a publisher may send, in kbit/s: b=AS/b=TIAS and x-google-max-bitrate in the
         * answer. 4000 is room for 1080p30 or a detailed screen; a 720p camera settles
         * around 2500.
         */
        maxBitrateKbps: z.number().int().min(100).max(50_000).default(4000),
        /**
         * Where a libwebrtc browser's bandwidth estimate starts (x-google-start-bitrate),
         * in kbit/s, instead of its own 300; capped by maxBitrateKbps. Too high for the
         * publisher's uplink only costs a short burst of loss at the start.
         */
        startBitrateKbps: z.number().int().min(100).max(50_000).default(2000),
        /** Other values for matching stream names (first match wins), e.g. a low-bitrate "mobile-*". */
        streams: z
          .array(
            z
              .object({
                /** Stream name or pattern with * wildcards. */
                streams: streamPattern,
                maxBitrateKbps: z.number().int().min(100).max(50_000).optional(),
                startBitrateKbps: z.number().int().min(100).max(50_000).optional(),
              })
              .strict(),
          )
          .default([]),
      })
      .strict()
      .prefault({}),
    hls: z
      .object({
        /** Start HLS when a stream goes live. */
        auto: z.boolean().default(true),
        /** Target segment length in seconds; keyframes are requested at this cadence. */
        segmentSeconds: z.number().min(0.5).max(10).default(1),
        /** Segments listed in the live playlist. */
        listSize: z.number().int().min(2).max(100).default(6),
        /**
         * Low-Latency HLS: parts of about 200 ms, blocking playlist reload, a preload hint
         * (fMP4). The hls pipeline's lowLatency param.
         */
        lowLatency: z.boolean().default(true),
        /** Segment container: fragmented MP4 (.m4s), or MPEG-TS (.ts, plain HLS only). */
        segmentFormat: z.enum(['mpegts', 'fmp4']).default('fmp4'),
        /**
         * aac, or copy: the publisher's Opus kept as sent (no transcode; fmp4 only, for
         * hls.js, Safari 17+ and VLC). The hls pipeline's audio param.
         */
        audio: z.enum(['aac', 'copy']).default('aac'),
        /** Seconds the files of an ended stream are kept (playlist has #EXT-X-ENDLIST). */
        cleanupAfterSeconds: z.number().min(0).max(86_400).default(30),
      })
      .strict()
      .refine((h) => h.audio !== 'copy' || h.segmentFormat === 'fmp4', { message: 'hls.audio copy needs hls.segmentFormat fmp4: players do not take Opus in MPEG-TS segments', path: ['audio'] })
      .refine((h) => !h.lowLatency || h.segmentFormat === 'fmp4', { message: 'hls.segmentFormat mpegts needs hls.lowLatency false: Low-Latency HLS parts are fMP4', path: ['segmentFormat'] })
      .prefault({}),
    transcode: z
      .object({
        /**
         * VP8/VP9 publishers transcoded to H.264 at once (one ffmpeg each); one more gets
         * 503. A 720p30 transcode took 38 % of a core here, 360p 14 % (docs/benchmarks.md §10).
         */
        maxConcurrent: z.number().int().min(0).max(1000).default(2),
        /** The most a transcoded stream's H.264 gets (kbit/s); smaller pictures get less (0.09 bit per pixel at 30 fps). */
        videoKbps: z.number().int().min(100).max(20_000).default(2500),
        /**
         * Taller pictures are scaled down to this height, keeping their shape. maxConcurrent's
         * default was sized at 720p (38 % of a core each); 1080p took 76 %.
         */
        maxHeight: z.number().int().min(144).max(4320).default(720),
        /** x264 speed preset: slower ones are sharper at the same bitrate and cost more CPU. */
        preset: z.enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium']).default('veryfast'),
      })
      .strict()
      .prefault({}),
    push: z
      .object({
        /**
         * Let push URLs ask for listener mode (srt mode=listener/rendezvous, listen=): the
         * gateway then opens a port on this machine for a receiver to pull from.
         */
        allowListeners: z.boolean().default(false),
        /**
         * Where outputs may send media while auth is on: hosts ("ingest.example.com",
         * "*.example.com", "203.0.113.7", "10.0.0.0/8") and URL patterns
         * ("rtmp://a.rtmp.youtube.com/live2/*": scheme, host, port and path matched each on
         * its own). Nothing else; every address a name resolves to must be allowed, and
         * loopback, link-local and private ones only when listed. (Auth off: any but the
         * unspecified address.)
         */
        allowedTargets: z
          .array(
            z
              .string()
              .min(1)
              .max(MAX_PATTERN_LENGTH)
              .superRefine((entry, ctx) => {
                const problem = targetEntryProblem(entry);
                if (problem) ctx.addIssue({ code: 'custom', message: problem });
              }),
          )
          .default([]),
      })
      .strict()
      .prefault({}),
    recordings: z
      .object({
        /**
         * Free space (MB) a recording needs where it is written: below it, a new recording
         * is refused (507) and running ones are finished and stopped (failed, "disk full"),
         * before the disk fills up and takes HLS with it.
         */
        minFreeMB: z.number().min(0).max(10_000_000).default(500),
      })
      .strict()
      .prefault({}),
    mpegtsHttp: z
      .object({
        /** The /live/<stream>.ts ffmpeg stops this many seconds after its last viewer left. */
        idleStopSeconds: z.number().min(0).max(3600).default(10),
        /** A viewer with more than this many bytes waiting is dropped (it cannot keep up). */
        maxViewerBufferBytes: z.number().int().min(65_536).max(256 * 1024 * 1024).default(4 * 1024 * 1024),
        /**
         * ffmpeg, ffplay and ffprobe (User-Agent Lavf/...) start at the latest keyframe at
         * least this many seconds back: they read 5 s of an MPEG-TS (their analyzeduration)
         * before showing anything, and get them at once instead of waiting for them live.
         * The media workers keep that much of every stream (whole GOPs and their audio, about
         * 3 MB at 4 Mbit/s), so a /live whose first viewer is one of them starts its ffmpeg
         * there and answers at once too. 0: they start at the latest keyframe as other
         * players do, and nothing more is kept.
         */
        probeBacklogSeconds: z.number().min(0).max(30).default(5.2),
      })
      .strict()
      .prefault({}),
    whep: z
      .object({
        /**
         * WHEP viewers (real-time WebRTC playback) of one stream at once; one more gets 503
         * with Retry-After. Each costs the media worker of its stream the encryption and
         * sending of every packet (see docs/benchmarks.md).
         */
        maxViewersPerStream: z.number().int().min(0).max(10_000).default(40),
        /** WHEP viewers of all streams of this gateway at once; one more gets 503 with Retry-After. */
        maxViewers: z.number().int().min(0).max(100_000).default(100),
      })
      .strict()
      .prefault({}),
    /** Calls: composites (src/composites/), each one picture and one sound made from several streams. */
    composites: z
      .object({
        /** Composites at once (one compositor ffmpeg each); one more gets 503. */
        maxConcurrent: z.number().int().min(0).max(100).default(2),
        /** Participants in one composite (a 3x3 grid at most); a request for more gets 409, a later stream does not join. */
        maxParticipants: z.number().int().min(1).max(9).default(9),
        /** The speaker stays in the main area at least this long (speaker layout). */
        speakerHoldSeconds: z.number().min(0).max(60).default(2),
        /** Composites that exist from start-up (the body of POST /api/composites). */
        declared: z.array(compositeSpec).default([]),
      })
      .strict()
      .prefault({}),
    /** Outputs started whenever a matching stream goes live, e.g. always record "studio-*". */
    outputs: z
      .array(
        z
          .object({
            /** Stream name or pattern with * wildcards. */
            streams: streamPattern,
            type: z.string().min(1),
            params: z.record(z.string(), z.unknown()).default({}),
          })
          .strict(),
      )
      .default([]),
    webhooks: z
      .object({
        /** URLs that receive every gateway event as a JSON POST. */
        urls: z.array(z.url()).default([]),
        /** Only these event types (empty = all). */
        events: z.array(z.enum(EVENT_TYPES)).default([]),
        timeoutMs: z.number().int().min(100).max(60_000).default(5000),
        /** Further tries after a failed delivery (1 s, 2 s, 4 s... apart). */
        retries: z.number().int().min(0).max(10).default(3),
      })
      .strict()
      .prefault({}),
    media: z
      .object({
        /**
         * Worker threads that run the publishers' peers and forward their RTP (one per core
         * by default): each session runs on the least-loaded one.
         */
        workers: z.number().int().min(1).max(64).default(() => availableParallelism()),
      })
      .strict()
      .prefault({}),
    streams: z
      .object({
        /** A second publisher on a live name replaces the first instead of getting 409. */
        replaceExisting: z.boolean().default(false),
        /**
         * When a publisher leaves, the outputs started over REST wait this many seconds for a
         * publisher to return under the same name and then start again (0: they end).
         */
        resumeOutputsSeconds: z.number().min(0).max(86_400).default(0),
        /**
         * Offers from one address that may be connecting at once; more get 429. Each holds
         * a transport and an ffmpeg until it connects or ice.connectTimeoutMs passes.
         */
        maxConnectingPerAddress: z.number().int().min(1).max(1000).default(10),
        /**
         * Offers from all addresses that may be connecting at once; more get 503 with
         * Retry-After. Without it, a publish token spread over a few addresses held 63
         * half-open sessions and their ffmpegs, and /healthz took 3.8 s.
         */
        maxConnecting: z.number().int().min(1).max(10_000).default(20),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        /**
         * TCP connections to the HTTP server. 0: the process's file-descriptor limit less a
         * quarter (at least 1024), kept for ffmpeg's pipes, the ICE and RTP sockets and files.
         * perAddress: behind a reverse proxy every client has the proxy's address: raise it.
         */
        connections: cap(0, 1000),
        /** Requests being answered at once (/live viewers and event streams are counted as connections only). */
        requests: cap(1000, 100),
        /** WebSocket signalling connections (/ws). */
        websockets: cap(1000, 20),
        /** Event streams (GET /api/events). */
        sse: cap(200, 10),
        /** With auth on, a /ws connection that has shown no valid credential after this long is closed. */
        wsAuthTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
        /** A request's headers must have arrived this long after it began (slow clients hold a socket each). */
        headersTimeoutMs: z.number().int().min(500).max(120_000).default(5000),
        /** The whole request, body included, must have arrived by then (a WHIP offer is a few KB). */
        requestTimeoutMs: z.number().int().min(1000).max(600_000).default(10_000),
      })
      .strict()
      .prefault({})
      .refine((l) => l.headersTimeoutMs <= l.requestTimeoutMs, { message: 'limits.headersTimeoutMs must not exceed requestTimeoutMs' }),
    auth: z
      .object({
        /**
         * auto: credentials are needed when any are configured; without any, the gateway
         * runs open on a loopback address and refuses to start on another. none: open
         * whatever it listens on (say so knowingly).
         */
        mode: z.enum(['auto', 'none']).default('auto'),
        /** Static tokens, each with its permissions. */
        tokens: z
          .array(
            z
              .object({
                token: z.string().min(12, 'must be at least 12 characters'),
                permissions: z.array(permission).min(1),
              })
              .strict(),
          )
          .default([]),
        /** JWTs: HS256 with `secret`, or keys from `jwksUrl`; permissions in claim `claim`. */
        jwt: z
          .object({
            secret: z.string().min(32, 'must be at least 32 characters').optional(),
            jwksUrl: z.url().optional(),
            issuer: z.string().optional(),
            audience: z.string().optional(),
            /** Claim with [{action, streams}] (or MediaMTX's [{action, path}]). */
            claim: z.string().min(1).default('permissions'),
          })
          .strict()
          .refine((j) => (j.secret === undefined) !== (j.jwksUrl === undefined), { message: 'give exactly one of secret and jwksUrl' })
          .optional(),
        /** An HTTP service that decides: POST {action, stream, ip, token}, 2xx allows. */
        hook: z
          .object({
            url: z.url(),
            timeoutMs: z.number().int().min(100).max(30_000).default(3000),
            /** How long an answer is reused for the same token, action, stream and address. */
            cacheSeconds: z.number().min(0).max(3600).default(10),
          })
          .strict()
          .optional(),
        /**
         * How long the tickets in an HLS playlist's segment URLs (instead of the player's
         * token) stay valid. A player gets new ones with every playlist it loads; a ticket
         * opens segments only, so a leaked segment URL is good for this long at most.
         */
        hlsTicketSeconds: z.number().min(2).max(86_400).default(600),
        /** Bad credentials from one address within failureWindowSeconds before it gets 429. */
        maxFailures: z.number().int().min(1).max(10_000).default(10),
        failureWindowSeconds: z.number().min(1).max(86_400).default(60),
      })
      .strict()
      .prefault({}),
    pipelines: z
      .object({
        /**
         * A folder of your own pipeline JSON files, loaded after the built-in ones (a file
         * with a built-in type replaces it). See pipelines/README.md.
         */
        extraDir: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    cluster: z
      .object({
        /**
         * redis://host:port: join the cluster of gateways that share this Redis (node
         * registry, stream names, events). Unset: this gateway runs alone, needing no Redis.
         */
        redis: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').optional(),
        /** The URL clients and other nodes reach this node at (WHIP redirects, /hls, /live); needed with redis. */
        nodeUrl: z.url().optional(),
        /** Publishers this node takes (0: no cap). A full node redirects a WHIP offer (307) to a node with room, or answers 503 alone. */
        maxSessions: z.number().int().min(0).max(100_000).default(0),
        /** The machine's CPU (% of all its cores) above which this node takes no new publisher (0: no ceiling). */
        maxCpuPercent: z.number().min(0).max(100).default(0),
        /** How often a node refreshes its entry and its names in Redis; a node silent for 4 of these is gone. */
        heartbeatMs: z.number().int().min(250).max(10_000).default(2000),
      })
      .strict()
      .prefault({})
      .refine((c) => c.redis === undefined || c.nodeUrl !== undefined, { message: 'cluster.redis needs cluster.nodeUrl (NODE_URL): the URL other nodes and clients reach this node at', path: ['nodeUrl'] }),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
/** What a config file, env or flags may give: any subset, nested. */
export type ConfigInput = z.input<typeof configSchema>;
