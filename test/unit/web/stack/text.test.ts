import { describe, expect, it } from "vitest";
import { count, limitsText, mib, seconds, splitCommand } from "../../../../src/web/stack/text.ts";

describe("the stack view's text", () => {
  it("splits a command line into words, keeping quoted strings whole", () => {
    expect(splitCommand("sleep 3600")).toEqual(["sleep", "3600"]);
    expect(splitCommand(`  sh -c "echo \\"hi\\" there"  'a b' `)).toEqual(["sh", "-c", 'echo "hi" there', "a b"]);
    expect(splitCommand("")).toEqual([]);
  });

  it("writes bytes in MiB, times in seconds and counts with k and M", () => {
    expect(mib(1.5 * 2 ** 20)).toBe("1.5 MiB");
    expect(mib(128 * 2 ** 20)).toBe("128 MiB");
    expect(seconds(1234)).toBe("1.23 s");
    expect(seconds(12_345)).toBe("12.3 s");
    expect(count(999)).toBe("999");
    expect(count(1500)).toBe("1.5 k");
    expect(count(2_500_000)).toBe("2.5 M");
  });

  it("names a container's limits, or says it has none", () => {
    expect(limitsText({ memoryBytes: 64 * 2 ** 20, cpuQuotaUs: 50_000, cpuPeriodUs: 100_000, pidsLimit: 20 })).toBe("memory 64 MiB · CPU 0.5 · pids 20");
    expect(limitsText({ cpuQuotaUs: 200_000 })).toBe("CPU 2");
    expect(limitsText({})).toBe("none (it may use the whole VM)");
  });
});
