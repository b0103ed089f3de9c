import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.js';

// Defaults (schema) <- config file <- environment <- CLI flags. Every value is checked by
// the schema; a bad one stops start-up with a message naming the key.

export class ConfigError extends Error {}

type Json = Record<string, unknown>;

/** Environment variables and the config key each sets. Values are parsed as the key's type. */
export const ENV_KEYS: Record<string, string> = {
  HOST: 'http.host',
  PORT: 'http.port',
  CORS_ORIGINS: 'http.corsOrigins',
  DATA_DIR: 'dataDir',
  FFMPEG_PATH: 'ffmpeg.path',
  RTP_PORT_MIN: 'rtp.portMin',
  RTP_PORT_MAX: 'rtp.portMax',
  ICE_ADDRESSES: 'ice.addresses',
  ICE_IPV6: 'ice.ipv6',
  ICE_SERVERS: 'ice.servers',
  ICE_PORT_RANGE: 'ice.portRange',
  ICE_TCP: 'ice.tcp',
  PUBLIC_ADDRESSES: 'ice.publicAddresses',
  TURN_URLS: 'ice.turnUrls',
  TURN_SECRET: 'ice.turnSecret',
  TURN_FOR_GATEWAY: 'ice.turnForGateway',
  VIDEO_MAX_BITRATE_KBPS: 'video.maxBitrateKbps',
  VIDEO_START_BITRATE_KBPS: 'video.startBitrateKbps',
  HLS_AUTO: 'hls.auto',
  HLS_SEGMENT_SECONDS: 'hls.segmentSeconds',
  HLS_LIST_SIZE: 'hls.listSize',
  HLS_CLEANUP_SECONDS: 'hls.cleanupAfterSeconds',
  HLS_SEGMENT_FORMAT: 'hls.segmentFormat',
  HLS_LOW_LATENCY: 'hls.lowLatency',
  HLS_AUDIO: 'hls.audio',
  TRANSCODE_MAX_CONCURRENT: 'transcode.maxConcurrent',
  COMPOSITES_MAX_CONCURRENT: 'composites.maxConcurrent',
  COMPOSITES_MAX_PARTICIPANTS: 'composites.maxParticipants',
  TRANSCODE_VIDEO_KBPS: 'transcode.videoKbps',
  TRANSCODE_MAX_HEIGHT: 'transcode.maxHeight',
  TRANSCODE_PRESET: 'transcode.preset',
  RECORDINGS_MIN_FREE_MB: 'recordings.minFreeMB',
  REPLACE_EXISTING_PUBLISHER: 'streams.replaceExisting',
  RESUME_OUTPUTS_SECONDS: 'streams.resumeOutputsSeconds',
  LOG_LEVEL: 'log.level',
  PIPELINES_DIR: 'pipelines.extraDir',
  AUTH_MODE: 'auth.mode',
  AUTH_TOKENS: 'auth.tokens',
  AUTH_JWT_SECRET: 'auth.jwt.secret',
  AUTH_JWKS_URL: 'auth.jwt.jwksUrl',
  AUTH_HOOK_URL: 'auth.hook.url',
  TLS_CERT: 'http.tls.cert',
  TLS_KEY: 'http.tls.key',
  PUSH_ALLOWED_TARGETS: 'push.allowedTargets',
  MEDIA_WORKERS: 'media.workers',
  WHEP_MAX_VIEWERS_PER_STREAM: 'whep.maxViewersPerStream',
  WHEP_MAX_VIEWERS: 'whep.maxViewers',
  REDIS_URL: 'cluster.redis',
  NODE_URL: 'cluster.nodeUrl',
  MAX_SESSIONS: 'cluster.maxSessions',
  MAX_CPU_PERCENT: 'cluster.maxCpuPercent',
};

/** CLI flags (without --) and the config key each sets. */
export const FLAG_KEYS: Record<string, string> = {
  host: 'http.host',
  port: 'http.port',
  'data-dir': 'dataDir',
  ffmpeg: 'ffmpeg.path',
  'ice-addresses': 'ice.addresses',
  'public-addresses': 'ice.publicAddresses',
  'log-level': 'log.level',
};

function setPath(target: Json, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const k of keys.slice(0, -1)) {
    if (typeof node[k] !== 'object' || node[k] === null) node[k] = {};
    node = node[k] as Json;
  }
  node[keys[keys.length - 1]] = value;
}

function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? deepMerge(b as Json, v as Json)
        : v;
  }
  return out;
}

/**
 * Turns a string from env/flags into the type the key expects: numbers, booleans,
 * comma lists, JSON for ICE servers. Unparseable text is passed through, so the
 * schema reports it against the key.
 */
export function coerce(key: string, raw: string): unknown {
  const text = raw.trim();
  if (key === 'auth.tokens') {
    // JSON: [{"token": "...", "permissions": [{"action": "publish", "streams": "studio-*"}]}]
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  if (key === 'ice.servers') {
    if (text.startsWith('[')) {
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    }
    return text ? text.split(',').map((u) => ({ urls: u.trim() })) : [];
  }
  if (['ice.addresses', 'http.corsOrigins', 'ice.publicAddresses', 'ice.turnUrls', 'push.allowedTargets'].includes(key)) return text ? text.split(',').map((s) => s.trim()).filter(Boolean) : [];
  if (key === 'ice.portRange') return text.split(/[-,]/).map((s) => (/^\d+$/.test(s.trim()) ? Number(s) : s));
  if (/^(true|false|1|0|yes|no)$/i.test(text) && ['hls.auto', 'hls.lowLatency', 'ice.ipv6', 'ice.tcp', 'ice.turnForGateway', 'streams.replaceExisting'].includes(key)) {
    return /^(true|1|yes)$/i.test(text);
  }
  if (/^-?\d+(\.\d+)?$/.test(text) && !['http.host', 'dataDir', 'ffmpeg.path', 'ice.turnSecret', 'auth.jwt.secret', 'http.tls.cert', 'http.tls.key', 'pipelines.extraDir', 'cluster.redis', 'cluster.nodeUrl'].includes(key)) return Number(text);
  return text;
}

function readConfigFile(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const value: unknown = /\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text);
    if (value === null || value === undefined) return {};
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error('top level must be a mapping');
    return value as Json;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`config file ${file} is not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
}

export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const key = i.path.join('.') || '(top level)';
      if (i.code === 'unrecognized_keys') return `${key === '(top level)' ? '' : key + '.'}${i.keys.join(', ')}: unknown key`;
      return `${key}: ${i.message}`;
    })
    .join('; ');
}

/** Validates a partial config against the schema, filling defaults. */
export function parseConfig(input: unknown): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) throw new ConfigError(`invalid configuration: ${formatIssues(result.error)}`);
  return result.data;
}

export interface LoadOptions {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
}

export function loadConfig({ argv = [], env = process.env }: LoadOptions = {}): Config {
  let flags: ReturnType<typeof parseArgs>['values'];
  try {
    flags = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        ...Object.fromEntries(Object.keys(FLAG_KEYS).map((f) => [f, { type: 'string' as const }])),
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new ConfigError(`${(e as Error).message} (flags: --config FILE, ${Object.keys(FLAG_KEYS).map((f) => `--${f}`).join(', ')})`);
  }
  const file = (flags.config as string | undefined) ?? env.CONFIG_FILE;
  let merged: Json = file ? readConfigFile(file) : {};
  const fromEnv: Json = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const raw = env[name];
    if (raw !== undefined && raw !== '') setPath(fromEnv, key, coerce(key, raw));
  }
  merged = deepMerge(merged, fromEnv);
  const fromFlags: Json = {};
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    const raw = flags[flag];
    if (typeof raw === 'string') setPath(fromFlags, key, coerce(key, raw));
  }
  merged = deepMerge(merged, fromFlags);
  return parseConfig(merged);
}
