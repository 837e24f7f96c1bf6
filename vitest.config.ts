import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // end-to-end tests start real torch processes; two cores do not take many at once
    maxWorkers: 2,
  },
});
