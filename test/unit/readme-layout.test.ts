import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// The README's layout section is the map of src/: every folder and every file in it is
// named there (a file by its name without .ts), so the map cannot fall behind the tree.

const root = new URL('../../', import.meta.url).pathname;
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const full = path.join(dir, f);
    return statSync(full).isDirectory() ? sourceFiles(full) : f.endsWith('.ts') ? [full] : [];
  });
}

describe('README layout', () => {
  it('names every folder and file of src/', () => {
    const layout = /^Layout [\s\S]*?\n```\n([\s\S]*?)\n```/m.exec(readme)?.[1] ?? '';
    expect(layout).toContain('src/');
    const missing: string[] = [];
    for (const file of sourceFiles(path.join(root, 'src'))) {
      const rel = path.relative(path.join(root, 'src'), file);
      const name = path.basename(rel, '.ts');
      const folder = path.dirname(rel);
      if (!new RegExp(`(^|[^\\w-])${name.replace(/[-.]/g, '\\$&')}([^\\w-]|$)`, 'm').test(layout)) missing.push(rel);
      if (folder !== '.' && !layout.includes(`${path.basename(folder)}/`)) missing.push(`${folder}/`);
    }
    expect([...new Set(missing)]).toEqual([]);
  });
});
