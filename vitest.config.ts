import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // most tests wait on real child processes, not the CPU: run more files at once than cores; on
    // a CI machine (2 cores, nothing else to do) fewer at once keeps the timing-sensitive
    // multi-process tests from starving behind the ones that run real agent CLIs
    maxWorkers: process.env.CI ? 2 : 4,
  },
});
