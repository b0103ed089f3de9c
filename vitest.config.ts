import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Media tests share 2 cores and real ffmpeg processes: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
