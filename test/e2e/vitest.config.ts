import { defineConfig } from "vitest/config";

// Browser tests: Chromium drives the built site (npm run test:e2e builds it first).
// One file at a time: each boots real guests in a real browser.
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.test.ts"],
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
