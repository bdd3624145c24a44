import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts the embedded stack when it is not running, and migrates a template database.
    globalSetup: ['test/helpers/global-setup.ts'],
    // Integration tests share one broker, one Temporal server and two cores: run files one
    // at a time so timings (rebalances, kills, restarts) stay predictable.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
});
