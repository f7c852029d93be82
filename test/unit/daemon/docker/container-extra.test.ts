import { describe, expect, it } from "vitest";
import type { Container } from "../../../../src/containers/engine.ts";
import { dockerStats, dockerTimestamp } from "../../../../src/daemon/docker/container-extra.ts";
import { statHeader } from "../../../../src/daemon/docker/archive.ts";

describe("the Docker API's container extras", () => {
  it("reads prune's until as a duration, unix seconds or a date", () => {
    const now = Date.UTC(2026, 0, 2);
    expect(dockerTimestamp("24h", now)).toBe(Date.UTC(2026, 0, 1));
    expect(dockerTimestamp("1h30m", now)).toBe(now - 90 * 60_000);
    expect(dockerTimestamp("1767225600")).toBe(Date.UTC(2026, 0, 1));
    expect(dockerTimestamp("1767225600.5")).toBe(Date.UTC(2026, 0, 1) + 500);
    expect(dockerTimestamp("2026-01-01T00:00:00Z")).toBe(Date.UTC(2026, 0, 1));
    expect(() => dockerTimestamp("bogus")).toThrow('failed to parse value as time or duration: "bogus"');
  });

  it("writes stats in Docker's shape: nanoseconds, the guest's memory as the limit when none is set", () => {
    const c = { id: "abc", name: "web" } as Container;
    const stats = {
      memoryBytes: 4096,
      memoryPeakBytes: 8192,
      cpuUsageUs: 2000,
      cpuThrottledUs: 0,
      pids: 2,
      cpuUserUs: 1500,
      cpuSystemUs: 500,
      memoryStat: { inactive_file: 1024 },
      systemCpuNs: 5e9,
      onlineCpus: 1,
      guestMemoryBytes: 128 * 1024 ** 2,
    };
    const j = dockerStats(c, { stats, read: Date.UTC(2026, 0, 1, 0, 0, 1) }, { stats: { ...stats, cpuUsageUs: 1000, systemCpuNs: 4e9 }, read: Date.UTC(2026, 0, 1) }) as Record<string, any>;
    expect(j.read).toBe("2026-01-01T00:00:01.000000000Z");
    expect(j.preread).toBe("2026-01-01T00:00:00.000000000Z");
    expect(j.cpu_stats).toMatchObject({ cpu_usage: { total_usage: 2_000_000, usage_in_usermode: 1_500_000, usage_in_kernelmode: 500_000 }, system_cpu_usage: 5e9, online_cpus: 1 });
    expect(j.precpu_stats.cpu_usage.total_usage).toBe(1_000_000);
    expect(j.memory_stats).toEqual({ usage: 4096, stats: { inactive_file: 1024 }, limit: 128 * 1024 ** 2 });
    expect(j.pids_stats).toEqual({ current: 2 });
    expect(j).toMatchObject({ name: "/web", id: "abc" });
    expect(j.networks).toBeUndefined();
    const zero = dockerStats(c, {}, {}) as Record<string, any>;
    expect(zero).toMatchObject({ read: "0001-01-01T00:00:00Z", memory_stats: {}, pids_stats: {} });
  });

  it("carries a path's stat as base64 JSON, as X-Docker-Container-Path-Stat", () => {
    const h = statHeader({ name: "é.txt", size: 6, mode: 420, mtime: "2026-01-01T00:00:00Z", linkTarget: "" });
    expect(JSON.parse(Buffer.from(h, "base64").toString("utf8"))).toEqual({ name: "é.txt", size: 6, mode: 420, mtime: "2026-01-01T00:00:00Z", linkTarget: "" });
  });
});
