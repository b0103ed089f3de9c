// A small JSON Schema (2020-12) validator for checking live API responses against
// /api/openapi.json. It is stricter than the standard on purpose, in two ways:
// - an object's properties are closed unless its schema gives additionalProperties a
//   schema: a property the document does not describe is an error, whether the schema
//   says additionalProperties: false or says nothing;
// - a keyword it does not know is an error, not skipped, so no part of a schema goes
//   unchecked without the test saying so.
// Written here rather than taken from a package: it is this small, and ajv would check
// the standard's open objects, which is what let undescribed fields through.

export type JsonSchema = boolean | { [keyword: string]: unknown };

/** Keywords that only annotate. */
const ANNOTATIONS = new Set(['description', 'title', 'examples', 'default', 'deprecated', 'readOnly', 'writeOnly', 'discriminator', '$comment']);
const CHECKED = new Set([
  '$ref', 'type', 'properties', 'required', 'additionalProperties', 'propertyNames', 'items', 'enum', 'const', 'anyOf', 'oneOf', 'allOf',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern', 'format', 'minItems', 'maxItems',
]);
const FORMATS: Record<string, (s: string) => boolean> = {
  'date-time': (s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)),
};

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** Follows "#/a/b" within `root`. */
export function resolveRef(root: unknown, ref: string): JsonSchema {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are followed: ${ref}`);
  let at: unknown = root;
  for (const part of ref.slice(2).split('/')) {
    at = (at as Record<string, unknown> | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    if (at === undefined) throw new Error(`$ref ${ref} names nothing in the document`);
  }
  return at as JsonSchema;
}

/** Where `value` breaks `schema` ($refs resolved in `root`), one line each; empty if nowhere. */
export function validate(schema: JsonSchema, value: unknown, root: unknown, at = '$'): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${at}: not allowed here`];
  const s = schema;
  const problems: string[] = [];
  const fail = (what: string) => problems.push(`${at}: ${what}`);
  for (const k of Object.keys(s)) if (!CHECKED.has(k) && !ANNOTATIONS.has(k)) fail(`the schema has a keyword this check does not know: ${k}`);

  if (typeof s.$ref === 'string') problems.push(...validate(resolveRef(root, s.$ref), value, root, at));
  const t = typeOf(value);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) return [...problems, `${at}: ${JSON.stringify(value)} is ${t}, not ${types.join(' or ')}`];
  }
  if (s.enum !== undefined && !(s.enum as unknown[]).some((e) => e === value)) fail(`${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  if (s.const !== undefined && s.const !== value) fail(`${JSON.stringify(value)} is not ${JSON.stringify(s.const)}`);
  for (const k of ['allOf', 'anyOf', 'oneOf'] as const) {
    const branches = s[k] as JsonSchema[] | undefined;
    if (!branches) continue;
    const results = branches.map((b) => validate(b, value, root, at));
    const passed = results.filter((r) => r.length === 0).length;
    if (k === 'allOf') problems.push(...results.flat());
    else if (k === 'anyOf' ? passed === 0 : passed !== 1) fail(`${k}: ${passed} of ${branches.length} branches match (${results.map((r) => r[0] ?? 'ok').join(' | ')})`);
  }

  if (t === 'integer' || t === 'number') {
    const n = value as number;
    if (typeof s.minimum === 'number' && n < s.minimum) fail(`${n} < minimum ${s.minimum}`);
    if (typeof s.maximum === 'number' && n > s.maximum) fail(`${n} > maximum ${s.maximum}`);
    if (typeof s.exclusiveMinimum === 'number' && n <= s.exclusiveMinimum) fail(`${n} <= exclusiveMinimum ${s.exclusiveMinimum}`);
    if (typeof s.exclusiveMaximum === 'number' && n >= s.exclusiveMaximum) fail(`${n} >= exclusiveMaximum ${s.exclusiveMaximum}`);
  }
  if (t === 'string') {
    const str = value as string;
    if (typeof s.minLength === 'number' && str.length < s.minLength) fail(`shorter than ${s.minLength}`);
    if (typeof s.maxLength === 'number' && str.length > s.maxLength) fail(`longer than ${s.maxLength}`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(str)) fail(`${JSON.stringify(str)} does not match ${s.pattern}`);
    if (typeof s.format === 'string') {
      const check = FORMATS[s.format];
      if (!check) fail(`format ${s.format} is not one this check knows`);
      else if (!check(str)) fail(`${JSON.stringify(str)} is not a ${s.format}`);
    }
  }
  if (t === 'array') {
    const items = value as unknown[];
    if (typeof s.minItems === 'number' && items.length < s.minItems) fail(`fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && items.length > s.maxItems) fail(`more than ${s.maxItems} items`);
    if (s.items !== undefined) items.forEach((v, i) => problems.push(...validate(s.items as JsonSchema, v, root, `${at}[${i}]`)));
  }
  if (t === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, JsonSchema>;
    for (const r of (s.required ?? []) as string[]) if (!(r in obj)) fail(`required property ${r} is missing`);
    const extra = typeof s.additionalProperties === 'object' || s.additionalProperties === true ? (s.additionalProperties as JsonSchema) : undefined;
    // A $ref or a combination describes the properties elsewhere; the branch checks them.
    const describedElsewhere = s.$ref !== undefined || s.allOf !== undefined || s.anyOf !== undefined || s.oneOf !== undefined;
    for (const [k, v] of Object.entries(obj)) {
      if (s.propertyNames !== undefined) problems.push(...validate(s.propertyNames as JsonSchema, k, root, `${at}{${k}}`));
      if (k in props) problems.push(...validate(props[k], v, root, `${at}.${k}`));
      else if (extra) problems.push(...validate(extra, v, root, `${at}.${k}`));
      else if (!describedElsewhere) fail(`property ${k} is not described`);
    }
  }
  return problems;
}

/**
 * Object schemas in `schema` (following $refs once each) that a client reading the
 * document would take as open: properties listed, additionalProperties not false. This
 * check closes them anyway; the document should say so too.
 */
export function openObjects(schema: JsonSchema, root: unknown, at = '$', seen = new Set<string>()): string[] {
  if (typeof schema !== 'object') return [];
  const out: string[] = [];
  if (typeof schema.$ref === 'string') {
    if (seen.has(schema.$ref)) return [];
    seen.add(schema.$ref);
    out.push(...openObjects(resolveRef(root, schema.$ref), root, schema.$ref, seen));
  }
  const isObject = schema.type === 'object' || (Array.isArray(schema.type) && schema.type.includes('object'));
  if (isObject && schema.additionalProperties === undefined) out.push(at);
  for (const [k, v] of Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>)) out.push(...openObjects(v, root, `${at}.${k}`, seen));
  for (const k of ['items', 'additionalProperties'] as const) if (typeof schema[k] === 'object') out.push(...openObjects(schema[k] as JsonSchema, root, `${at}.${k}`, seen));
  for (const k of ['allOf', 'anyOf', 'oneOf'] as const) ((schema[k] ?? []) as JsonSchema[]).forEach((b, i) => out.push(...openObjects(b, root, `${at}.${k}[${i}]`, seen)));
  return out;
}
