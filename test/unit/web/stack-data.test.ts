import { describe, expect, it } from "vitest";
import { parseGuestStack, sections } from "../../../src/web/stack-data.ts";

const LIVE = `@release
6.1.176
@uptime
12.34 10.00
@ns
cgroup cgroup:[4026531835]
ipc ipc:[4026531839]
pid pid:[4026531836]
@controllers
cpu io memory pids
@cgroups
.
./init.scope
./hyperlab
@containers
web    231   running  /run/bundles/web  2026-01-01T00:00:00Z  root
@container_ns
231 pid pid:[4026532001]
231 cgroup cgroup:[4026531835]
`;
const STATIC = `@crun
crun version 1.8.1
@runc
runc version 1.1.5+ds1
`;

describe("the stack view's guest data", () => {
  it("splits marked sections and drops empty lines", () => {
    expect(sections("@a\nx\n\ny\r\n@b\n").get("a")).toEqual(["x", "y"]);
    expect(sections("@a\nx\n@b\n").get("b")).toEqual([]);
  });

  it("reads release, uptime, namespaces, controllers, cgroups, runtimes and containers", () => {
    const s = parseGuestStack(LIVE, STATIC);
    expect(s.release).toBe("6.1.176");
    expect(s.uptimeSeconds).toBeCloseTo(12.34);
    expect(s.namespaces).toEqual([
      { type: "cgroup", inode: 4026531835 },
      { type: "ipc", inode: 4026531839 },
      { type: "pid", inode: 4026531836 },
    ]);
    expect(s.controllers).toEqual(["cpu", "io", "memory", "pids"]);
    expect(s.cgroups).toEqual(["/", "/hyperlab", "/init.scope"]);
    expect(s.crun).toBe("crun version 1.8.1");
    expect(s.runc).toBe("runc version 1.1.5+ds1");
    expect(s.containers).toEqual([{ id: "web", pid: 231, status: "running" }]);
    expect(s.containerNamespaces).toEqual({
      231: [
        { type: "pid", inode: 4026532001 },
        { type: "cgroup", inode: 4026531835 },
      ],
    });
  });

  it("gives empty values when the guest printed nothing for a section", () => {
    const s = parseGuestStack("@release\n@containers\n", "");
    expect(s.release).toBe("");
    expect(s.containers).toEqual([]);
    expect(s.crun).toBe("");
  });
});
