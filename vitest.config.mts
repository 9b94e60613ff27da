import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/e2e/**/*.test.ts'],
    // Black-box tests spawn scripts that fetch, bundle and poll; on a loaded 2-core CI machine a few
    // take close to a minute, so the bound is generous (each script has its own timeouts too).
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Vitest's default is one worker per CPU less one: a single worker on a 2-core machine. The
    // black-box tests wait on the scripts they spawn (and those on servers and timeouts), so three
    // workers keep two cores busy: 503 s for the whole suite against 576 s with two.
    maxWorkers: 3,
  },
})
