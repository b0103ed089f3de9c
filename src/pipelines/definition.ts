import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

// Pipeline definitions are data (pipelines/*.json at the package root): this file loads
// and checks them and fills their placeholders. Running them is ffmpeg-process.ts's job.

export const PIPELINE_DIR = fileURLToPath(new URL('../../pipelines/', import.meta.url));

/** Values the gateway supplies to every pipeline, besides its params. */
export const BUILTIN_VALUES = ['dir', 'stream', 'audioChannels', 'audioBitrate'] as const;

const paramSchema = z.object({
  type: z.enum(['number', 'integer', 'string']),
  default: z.union([z.number(), z.string()]),
  min: z.number().optional(),
  max: z.number().optional(),
  description: z.string().optional(),
});

const definitionSchema = z
  .object({
    type: z.string().regex(/^[a-z][a-z0-9-]*$/),
    description: z.string(),
    params: z.record(z.string(), paramSchema).default({}),
    keyframeIntervalSeconds: z.string().optional(),
    input: z.array(z.string()),
    video: z.array(z.string()).default([]),
    audio: z.array(z.string()).default([]),
    output: z.array(z.string()),
    target: z.string(),
  })
  .strict();

export type PipelineDefinition = z.infer<typeof definitionSchema>;
export type Values = Record<string, string | number>;

const PLACEHOLDER = /\{\{(\w+)\}\}/g;

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
  const known = new Set<string>([...Object.keys(def.params), ...BUILTIN_VALUES]);
  const all = [...def.input, ...def.video, ...def.audio, ...def.output, def.target, def.keyframeIntervalSeconds ?? ''];
  for (const text of all) {
    for (const [, key] of text.matchAll(PLACEHOLDER)) {
      if (!known.has(key)) throw new Error(`${source}: unknown placeholder {{${key}}}`);
    }
  }
  return def;
}

export function loadDefinitions(dir = PIPELINE_DIR): Map<string, PipelineDefinition> {
  const defs = new Map<string, PipelineDefinition>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const def = parseDefinition(JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')), `pipelines/${file}`);
    defs.set(def.type, def);
  }
  return defs;
}

/** Param values: defaults, overridden by the given ones, checked against min/max. */
export function resolveParams(def: PipelineDefinition, given: Record<string, unknown> = {}): Values {
  const out: Values = {};
  for (const [name, p] of Object.entries(def.params)) {
    const v = given[name] ?? p.default;
    if (p.type === 'string') {
      if (typeof v !== 'string') throw new Error(`${name}: must be a string`);
    } else {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${name}: must be a number`);
      if (p.type === 'integer' && !Number.isInteger(v)) throw new Error(`${name}: must be an integer`);
      if (p.min !== undefined && v < p.min) throw new Error(`${name}: must be >= ${p.min}`);
      if (p.max !== undefined && v > p.max) throw new Error(`${name}: must be <= ${p.max}`);
    }
    out[name] = v as string | number;
  }
  return out;
}

export interface BuiltArgs {
  inputOptions: string[];
  outputOptions: string[];
  target: string;
  keyframeIntervalSeconds?: number;
}

/** ffmpeg options for a definition, given which kinds of track the stream has. */
export function buildArgs(def: PipelineDefinition, values: Values, has: { video: boolean; audio: boolean }): BuiltArgs {
  const f = (list: string[]) => list.map((t) => fill(t, values));
  const kfi = def.keyframeIntervalSeconds ? Number(fill(def.keyframeIntervalSeconds, values)) : undefined;
  return {
    inputOptions: f(def.input),
    outputOptions: [...(has.video ? f(def.video) : []), ...(has.audio ? f(def.audio) : []), ...f(def.output)],
    target: fill(def.target, values),
    keyframeIntervalSeconds: kfi && kfi > 0 ? kfi : undefined,
  };
}
