import { describe, expect, it } from "vitest";
import { parseCpus, parseMemory, parsePidsLimit } from "../../../src/containers/limits.ts";

describe("resource limit flags", () => {
  it("reads memory sizes with Docker's units", () => {
    expect(parseMemory("64m")).toBe(64 * 1024 ** 2);
    expect(parseMemory("1G")).toBe(1024 ** 3);
    expect(parseMemory("8192k")).toBe(8 * 1024 ** 2);
    expect(parseMemory("10485760")).toBe(10 * 1024 ** 2);
    expect(parseMemory("1.5g")).toBe(1.5 * 1024 ** 3);
  });

  it("rejects malformed, negative and too-small memory sizes, naming the value", () => {
    expect(() => parseMemory("12x")).toThrow("invalid --memory '12x': use a positive number with an optional unit b, k, m or g");
    expect(() => parseMemory("-5m")).toThrow("invalid --memory '-5m'");
    expect(() => parseMemory("1m")).toThrow("invalid --memory '1m': the minimum is 6m");
    expect(() => parseMemory("")).toThrow("invalid --memory ''");
  });

  it("turns --cpus into a cpu.max quota per 100 ms period", () => {
    expect(parseCpus("0.5")).toEqual({ cpuQuotaUs: 50_000, cpuPeriodUs: 100_000 });
    expect(parseCpus("0.2")).toEqual({ cpuQuotaUs: 20_000, cpuPeriodUs: 100_000 });
    expect(parseCpus("1")).toEqual({ cpuQuotaUs: 100_000, cpuPeriodUs: 100_000 });
  });

  it("rejects zero, negative, non-numeric and more than the guest's one CPU", () => {
    expect(() => parseCpus("0")).toThrow("invalid --cpus '0'");
    expect(() => parseCpus("-1")).toThrow("invalid --cpus '-1'");
    expect(() => parseCpus("half")).toThrow("invalid --cpus 'half'");
    expect(() => parseCpus("2")).toThrow("the guest has 1 CPU, so at most 1");
  });

  it("takes a whole pids limit of at least 1", () => {
    expect(parsePidsLimit("20")).toBe(20);
    expect(() => parsePidsLimit("0")).toThrow("invalid --pids-limit '0'");
    expect(() => parsePidsLimit("-3")).toThrow("invalid --pids-limit '-3'");
    expect(() => parsePidsLimit("2.5")).toThrow("invalid --pids-limit '2.5'");
  });
});
