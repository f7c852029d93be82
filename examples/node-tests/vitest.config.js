import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // A test's VM comes from the lab's warm pool at once; the first lab of a
    // fresh install builds the boot snapshot first (a cold boot, ~10 s).
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
