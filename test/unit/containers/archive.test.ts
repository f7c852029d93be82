import { describe, expect, it } from "vitest";
import { containerPath, goFileMode, goTime } from "../../../src/containers/archive.ts";

describe("docker cp's paths and stats", () => {
  it("cleans a path as dockerd does, keeping a trailing / or /.", () => {
    expect(containerPath("/data/a.txt")).toEqual({ abs: "/data/a.txt", name: "a.txt" });
    expect(containerPath("data//sub/../a.txt")).toEqual({ abs: "/data/a.txt", name: "a.txt" });
    expect(containerPath("/data/")).toEqual({ abs: "/data/", name: "data" });
    expect(containerPath("/data/.")).toEqual({ abs: "/data/.", name: "." });
    expect(containerPath("/")).toEqual({ abs: "/", name: "/" });
    expect(containerPath("/..")).toEqual({ abs: "/", name: "/" });
    expect(containerPath(".")).toEqual({ abs: "/.", name: "." });
  });

  it("refuses an empty path, saying what to give", () => {
    expect(() => containerPath("")).toThrow("path cannot be empty");
  });

  it("gives Go's FileMode bits for Unix modes (what Docker's stat header carries)", () => {
    expect(goFileMode(0o100640)).toBe(0o640);
    expect(goFileMode(0o040755)).toBe(2147484141);
    expect(goFileMode(0o120777)).toBe(134218239);
    expect(goFileMode(0o104755)).toBe(2 ** 23 + 0o755);
    expect(goFileMode(0o041777)).toBe(2 ** 31 + 2 ** 20 + 0o777);
    expect(goFileMode(0o020666)).toBe(2 ** 26 + 2 ** 21 + 0o666);
  });

  it("writes busybox stat's times as Go does", () => {
    expect(goTime("2026-12-07 09:48:59.696000000 +0000")).toBe("2026-12-07T09:48:59.696Z");
    expect(goTime("2026-01-01 00:00:00.000000000 +0000")).toBe("2026-01-01T00:00:00Z");
    expect(goTime("2026-01-01 10:00:00.5 +0200")).toBe("2026-01-01T10:00:00.5+02:00");
    expect(goTime("garbage")).toBe("0001-01-01T00:00:00Z");
  });
});
