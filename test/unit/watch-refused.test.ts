import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WATCH_REFUSALS } from '../../src/whep/watch-refused.js';

// The README's table of WHEP refusals is the list in src/whep/watch-refused.ts: every
// reason, with its status and meaning, and nothing else.

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('WHEP refusals in the README', () => {
  it('lists every refusal with the status and meaning the gateway uses', () => {
    const table = /<!-- watch-refusals[^>]*-->\n([\s\S]*?)<!-- \/watch-refusals -->/.exec(readme)?.[1] ?? '';
    const rows = table
      .split('\n')
      .filter((l) => /^\| `\d{3}` \|/.test(l))
      .map((l) => l.split('|').slice(1, -1).map((c) => c.trim().replace(/`/g, '')));
    expect(rows).toEqual(Object.entries(WATCH_REFUSALS).map(([code, r]) => [String(r.status), code, r.meaning]));
  });
});
