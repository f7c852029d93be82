import { defineConfig } from "vitest/config";

// One config for the app build and for vitest.
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts"],
    // Integration tests boot real guests: each file gets its own worker and
    // the 2-core machine runs two at a time.
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
