import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ENV_KEYS, parseConfig } from '../../src/config/load.js';

// config.example.yaml is the reference for every key: it must parse, match the built-in
// defaults, and mention every key of the schema and every environment variable.

const text = readFileSync(new URL('../../config.example.yaml', import.meta.url), 'utf8');

function leafPaths(value: unknown, prefix = ''): string[] {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
  }
  return [prefix];
}

describe('config.example.yaml', () => {
  it('is a valid configuration equal to the defaults', () => {
    expect(parseConfig(YAML.parse(text))).toEqual(parseConfig({}));
  });

  it('documents every key and environment variable', () => {
    const optional = ['ice.portRange', 'ice.turnSecret', 'http.corsOrigins', 'http.tls.cert', 'http.tls.key', 'auth.jwt.secret', 'auth.jwt.jwksUrl', 'auth.jwt.issuer', 'auth.jwt.audience', 'auth.jwt.claim', 'auth.hook.url', 'auth.hook.timeoutMs', 'auth.hook.cacheSeconds', 'pipelines.extraDir', 'cluster.redis', 'cluster.nodeUrl'];
    const keys = [...leafPaths(parseConfig({})), ...optional];
    for (const key of keys) {
      const last = key.split('.').pop()!;
      expect(text, `key ${key}`).toMatch(new RegExp(`^\\s*#?\\s*${last}:`, 'm'));
    }
    for (const env of Object.keys(ENV_KEYS)) expect(text, `env ${env}`).toContain(`[${env}`);
  });
});
