// The short soak of CI (issue 16, "load held"): the benchmark's soak
// (bench/soak.ts) for a minute with 8 clients and a stuck attach, over VM
// `default` and two more. Every call must succeed, and once the load is over
// each guest must hold what it held before it: cgroups, mounts, veths,
// processes, zombies, the engine's container folders and containers, and the
// daemon its descriptors. The daemon's RSS and the guests' free memory and
// slab are reported but not asserted: the daemon's V8 heaps and the kept
// logs move RSS by tens of MiB either way within a minute, and guest free
// memory moved by up to 1.3 MiB of 93 MiB (page cache dropped before each
// measurement) in runs that leaked nothing countable. The 10-minute soak
// with 32 clients is `npm run bench -- soak`.
import { describe, expect, it } from "vitest";
import { type SoakReport, runSoak, summaryOf } from "../../bench/soak.ts";

describe("the daemon under a minute of load", () => {
  let report: SoakReport;

  it(
    "answers every call of 8 clients while a stuck client holds an attach it never reads",
    async () => {
      report = await runSoak({ clients: 8, durationS: 60, extraVms: 2, settleS: 10 });
      console.log(summaryOf(report));
      expect(report.error_kinds).toEqual({});
      expect(report.errors).toBe(0);
      // Every kind of call was made, in every VM that /v1 reaches.
      for (const [name, c] of Object.entries(report.calls)) expect(c.requests, name).toBeGreaterThan(0);
    },
    // About 3 minutes on a loaded 2-core machine: three VMs, a warm-up, the minute, the settle, the probes.
    600_000,
  );

  it("leaves no cgroup (live or dying), mount, veth, process, container folder or container behind in any guest", () => {
    expect(report, "the soak did not run").toBeDefined();
    for (const vm of report.vms) {
      // The memory figures (KiB) move with the guest's caches; the counts must not.
      const counts = Object.fromEntries(Object.entries(report.growth.guests[vm]!).filter(([k]) => !k.endsWith("_kib")));
      expect(counts, `growth in VM ${vm}`).toEqual({ cgroups: 0, dying_cgroups: 0, mounts: 0, veths: 0, processes: 0, zombies: 0, container_dirs: 0, containers: 0 });
    }
  });

  it("leaves no descriptor open in the daemon", () => {
    expect(report, "the soak did not run").toBeDefined();
    expect(report.after.daemon_fds).toBeLessThanOrEqual(report.before.daemon_fds);
  });
});
