import { describe, expect, it } from "vitest";
import { CONTAINER_SYSTEMS, processCounts, processesAdded } from "../../../src/containers/container-systems.ts";

describe("the handout's container systems", () => {
  it("lists all six the handout names, each that does not run with why", () => {
    const names = CONTAINER_SYSTEMS.map((s) => s.name);
    for (const n of ["LXC", "CRI-O", "Podman", "rkt", "Mesos", "Docker engine"]) expect(names).toContain(n);
    for (const s of CONTAINER_SYSTEMS) {
      if (s.state === "runs") expect(s.profile, s.name).toBeTruthy();
      else expect(s.why?.length ?? 0, s.name).toBeGreaterThan(40);
    }
  });

  it("tells which processes a listing gained, by name and count", () => {
    const before = processCounts("init\nhyperlab-agent\nsh\nps\nawk\n");
    const after = processCounts("init\nhyperlab-agent\nsh\nlxc-start\ninit\nsyslogd\nps\nawk\n");
    expect(processesAdded(before, after)).toEqual({ "lxc-start": 1, init: 1, syslogd: 1 });
    expect(processesAdded(after, before)).toEqual({});
  });
});
