import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { pushUrlProblem } from '../egress/push-url.js';

// Pipeline definitions are data (pipelines/*.json at the package root): this file loads
// and checks them, validates caller parameters against them, and fills their
// placeholders. Running them is ffmpeg-runner.ts's job.

export const PIPELINE_DIR = fileURLToPath(new URL('../../pipelines/', import.meta.url));

/** Values the gateway supplies to pipelines, besides their params (see pipelines/README.md). */
export const BUILTIN_VALUES = ['dir', 'file', 'stream', 'audioChannels', 'audioBitrate'] as const;

const paramSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('number'), default: z.number().optional(), min: z.number().optional(), max: z.number().optional(), description: z.string() }).strict(),
  /** `even`: RTP ports (RTCP takes the one above). */
  z.object({ type: z.literal('integer'), default: z.number().int().optional(), min: z.number().optional(), max: z.number().optional(), even: z.boolean().optional(), description: z.string() }).strict(),
  z.object({ type: z.literal('string'), default: z.string().optional(), pattern: z.string().optional(), description: z.string() }).strict(),
  /** A push target: only the listed URL schemes are accepted. */
  z.object({ type: z.literal('url'), protocols: z.array(z.string()).min(1), description: z.string() }).strict(),
  /** A switch the output's kind reads (HLS lowLatency); as a placeholder it is "true" or "false". */
  z.object({ type: z.literal('boolean'), default: z.boolean().optional(), description: z.string() }).strict(),
  /** One of fixed choices; each choice is a list of ffmpeg options, spliced in with {{...name}}. */
  z.object({ type: z.literal('enum'), default: z.string(), options: z.record(z.string(), z.array(z.string())), description: z.string() }).strict(),
]);

const definitionSchema = z
  .object({
    type: z.string().regex(/^[a-z][a-z0-9-]*$/),
    description: z.string(),
    /** A stream has at most one output of this type; its id is the type (hls, mpegts-http). */
    singleton: z.boolean().default(false),
    /** continuous: restarted when ffmpeg exits; oneshot: done when ffmpeg exits 0 (snapshot). */
    mode: z.enum(['continuous', 'oneshot']).default('continuous'),
    /** file: ffmpeg writes files; stdout: the gateway reads ffmpeg's output; push: ffmpeg sends to a URL. */
    delivery: z.enum(['file', 'stdout', 'push']).default('file'),
    /**
     * Whether ffmpeg may overwrite its target file: false means the gateway never starts it
     * on a file that exists (a recording never overwrites what was written).
     */
    overwrite: z.boolean().default(true),
    /** Track kinds the pipeline cannot run without. */
    requires: z.array(z.enum(['video', 'audio'])).default([]),
    /**
     * The audio ffmpeg reads: `source`, the publisher's as sent (Opus, G.711); `aac`, the
     * stream's AAC, encoded once per stream for every output that asks for it
     * (pipelines/shared/aac.json), which the pipeline copies (`-c:a copy`).
     */
    audioInput: z.enum(['source', 'aac']).default('source'),
    params: z.record(z.string().regex(/^[a-z][A-Za-z0-9]*$/), paramSchema).default({}),
    keyframeIntervalSeconds: z.string().optional(),
    /**
     * Values that differ when ffmpeg is started again after it died (empty on the first
     * start): e.g. HLS flags that continue the playlist instead of starting it over.
     */
    restartValues: z.record(z.string().regex(/^[a-z][A-Za-z0-9]*$/), z.string()).default({}),
    /** Options for ffmpeg's input; pipelines/defaults.json gives them to pipelines that name none. */
    input: z.array(z.string()),
    video: z.array(z.string()).default([]),
    audio: z.array(z.string()).default([]),
    output: z.array(z.string()),
    target: z.string(),
  })
  .strict();

export type PipelineDefinition = z.infer<typeof definitionSchema>;
export type ParamDefinition = z.infer<typeof paramSchema>;
export type Values = Record<string, string | number | boolean>;

const PLACEHOLDER = /\{\{(\w+)\}\}/g;
const SPLICE = /^\{\{\.\.\.(\w+)\}\}$/;

export function fill(text: string, values: Values): string {
  return text.replace(PLACEHOLDER, (_, key: string) => {
    if (!(key in values)) throw new Error(`pipeline placeholder {{${key}}} has no value`);
    return String(values[key]);
  });
}

/** Checks a definition; every placeholder must be a param or a built-in value. */
export function parseDefinition(json: unknown, source = 'definition'): PipelineDefinition {
  const result = definitionSchema.safeParse(json);
  if (!result.success) {
    throw new Error(`${source}: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const def = result.data;
  const known = new Set<string>([...Object.keys(def.params), ...Object.keys(def.restartValues), ...BUILTIN_VALUES]);
  const enums = Object.entries(def.params).filter(([, p]) => p.type === 'enum');
  const all = [...def.input, ...def.video, ...def.audio, ...def.output, def.target, def.keyframeIntervalSeconds ?? ''];
  for (const [, p] of enums) if (p.type === 'enum') all.push(...Object.values(p.options).flat());
  for (const text of all) {
    const splice = SPLICE.exec(text);
    if (splice) {
      if (def.params[splice[1]]?.type !== 'enum') throw new Error(`${source}: {{...${splice[1]}}} must name an enum param`);
      continue;
    }
    for (const [, key] of text.matchAll(PLACEHOLDER)) {
      if (!known.has(key)) throw new Error(`${source}: unknown placeholder {{${key}}}`);
    }
  }
  for (const [name, p] of enums) {
    if (p.type === 'enum' && !(p.default in p.options)) throw new Error(`${source}: default of ${name} is not one of its options`);
  }
  return def;
}

/** Shared values (defaults.json) that a pipeline file may leave out. */
const DEFAULTS_FILE = 'defaults.json';

function readJson(dir: string, file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path.join(dir, file)}: not a JSON pipeline definition (${(e as Error).message})`);
  }
}

function pipelineDefaults(): Record<string, unknown> {
  const { $comment: _comment, ...defaults } = readJson(PIPELINE_DIR, DEFAULTS_FILE);
  return defaults;
}

/** A pipeline the gateway runs for itself, not an output type (pipelines/shared/<name>.json). */
export function loadSharedDefinition(name: string): PipelineDefinition {
  return parseDefinition({ ...pipelineDefaults(), ...readJson(path.join(PIPELINE_DIR, 'shared'), `${name}.json`) }, `pipelines/shared/${name}.json`);
}

/** The built-in pipelines, then those in `extraDir` (which replace built-ins of the same type). */
export function loadDefinitions(extraDir?: string): Map<string, PipelineDefinition> {
  const defs = new Map<string, PipelineDefinition>();
  const defaults = pipelineDefaults();
  for (const dir of [PIPELINE_DIR, ...(extraDir ? [extraDir] : [])]) {
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch (e) {
      throw new Error(`pipelines.extraDir: cannot read ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    for (const file of files.filter((f) => f.endsWith('.json') && f !== DEFAULTS_FILE).sort()) {
      const def = parseDefinition({ ...defaults, ...readJson(dir, file) }, path.join(dir === PIPELINE_DIR ? 'pipelines' : dir, file));
      defs.set(def.type, def);
    }
  }
  return defs;
}

/** What an odd RTP port is told (pipelines' `even` params and rtp outputs). */
export const EVEN_PORT_RULE = 'must be even (RTCP uses the port above)';

/** What callers may ask for beyond the definition's own rules. */
export interface ParamRules {
  /** Push URLs may ask for listener mode (opening a port here). */
  allowListeners: boolean;
}

const DEFAULT_RULES: ParamRules = { allowListeners: false };

function paramValidator(p: ParamDefinition, rules: ParamRules): z.ZodType<string | number | boolean> {
  return validatorOf(p, rules).describe(p.description);
}

function validatorOf(p: ParamDefinition, rules: ParamRules): z.ZodType<string | number | boolean> {
  switch (p.type) {
    case 'number':
    case 'integer': {
      let n = p.type === 'integer' ? z.number().int() : z.number();
      if (p.min !== undefined) n = n.min(p.min);
      if (p.max !== undefined) n = n.max(p.max);
      const checked = p.type === 'integer' && p.even ? n.refine((v) => v % 2 === 0, EVEN_PORT_RULE) : n;
      return p.default !== undefined ? checked.default(p.default) : checked;
    }
    case 'string': {
      let s = z.string();
      if (p.pattern) s = s.regex(new RegExp(p.pattern), `must match ${p.pattern}`);
      return p.default !== undefined ? s.default(p.default) : s;
    }
    case 'url':
      return z
        .string()
        .max(2048)
        .superRefine((u, ctx) => {
          const problem = pushUrlProblem(u, { protocols: p.protocols, allowListeners: rules.allowListeners });
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        });
    case 'boolean':
      return p.default !== undefined ? z.boolean().default(p.default) : z.boolean();
    case 'enum':
      return z.enum(Object.keys(p.options) as [string, ...string[]]).default(p.default);
  }
}

/** A zod schema for the caller-settable params of a definition (unknown fields refused). */
export function paramsSchema(def: PipelineDefinition, rules: ParamRules = DEFAULT_RULES): z.ZodObject {
  return z.object(Object.fromEntries(Object.entries(def.params).map(([name, p]) => [name, paramValidator(p, rules)]))).strict();
}

export class ParamError extends Error {}

/** Param values: defaults, overridden by the given ones. Throws ParamError naming the field. */
export function resolveParams(def: PipelineDefinition, given: Record<string, unknown> = {}, rules: ParamRules = DEFAULT_RULES): Values {
  const result = paramsSchema(def, rules).safeParse(given);
  if (!result.success) {
    throw new ParamError(
      result.error.issues
        .map((i) => (i.code === 'unrecognized_keys' ? `${i.keys.join(', ')}: unknown field for ${def.type}` : `${i.path.join('.') || 'body'}: ${i.message}`))
        .join('; '),
    );
  }
  return result.data as Values;
}

export interface BuiltArgs {
  inputOptions: string[];
  outputOptions: string[];
  target: string;
  overwrite: boolean;
  keyframeIntervalSeconds?: number;
}

/**
 * ffmpeg options for a definition, given which kinds of track the stream has and whether
 * ffmpeg is being started again after it died (`restartValues`).
 */
export function buildArgs(def: PipelineDefinition, given: Values, has: { video: boolean; audio: boolean; restart?: boolean }): BuiltArgs {
  const values: Values = { ...given };
  for (const [k, v] of Object.entries(def.restartValues)) values[k] = has.restart ? v : '';
  const f = (list: string[]): string[] =>
    list.flatMap((t) => {
      const splice = SPLICE.exec(t);
      if (!splice) return [fill(t, values)];
      const p = def.params[splice[1]];
      return p?.type === 'enum' ? f(p.options[String(values[splice[1]])] ?? []) : [];
    });
  const kfi = def.keyframeIntervalSeconds ? Number(fill(def.keyframeIntervalSeconds, values)) : undefined;
  return {
    inputOptions: f(def.input),
    outputOptions: [...(has.video ? f(def.video) : []), ...(has.audio ? f(def.audio) : []), ...f(def.output)],
    target: fill(def.target, values),
    overwrite: def.overwrite,
    keyframeIntervalSeconds: kfi && kfi > 0 ? kfi : undefined,
  };
}
