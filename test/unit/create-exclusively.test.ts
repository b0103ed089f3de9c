import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createExclusively, TargetExists } from '../../src/outputs/pipeline-run.js';

// A pipeline that never overwrites (recordings) has its target created with O_EXCL just
// before ffmpeg writes into it: of two that race for one name exactly one gets it, and a
// file that is there already is never touched.

describe('exclusive target files', () => {
  it('of two racing for one name, one wins and the other is told; an existing file is left as it is', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'excl-'));
    try {
      const target = path.join(dir, 'cam_20261206-120000.mp4');
      const results = await Promise.allSettled([createExclusively(target, 'record'), createExclusively(target, 'record')]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refused.reason).toBeInstanceOf(TargetExists);
      expect((refused.reason as Error).message).toMatch(/exists and record never overwrites/);
      const other = path.join(dir, 'other.mp4');
      await writeFile(other, 'kept');
      await expect(createExclusively(other, 'record')).rejects.toBeInstanceOf(TargetExists);
      expect(await readFile(other, 'utf8')).toBe('kept');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
