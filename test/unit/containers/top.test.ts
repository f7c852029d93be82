import { describe, expect, it } from "vitest";
import { isDefaultPsArgs, parseDefaultTop, parsePsTop } from "../../../src/containers/top.ts";

describe("docker top's process tables", () => {
  it("knows which ps arguments mean Docker's default columns", () => {
    expect(isDefaultPsArgs("")).toBe(true);
    expect(isDefaultPsArgs(" -ef ")).toBe(true);
    expect(isDefaultPsArgs("-o pid,comm")).toBe(false);
    expect(isDefaultPsArgs("aux")).toBe(false);
  });

  it("builds ps -ef's columns from /proc: user names, times, terminal, command", () => {
    const now = Date.UTC(2026, 11, 7, 10, 0, 0) / 1000;
    const out = [
      `@now ${now} 1000.00`,
      "@proc 42",
      // started 900 s after boot (90000 ticks), 300 ticks of CPU, on pts/0 (136:0)
      "42 (sh) S 41 42 42 34816 42 4194560 0 0 0 0 200 100 0 0 20 0 1 0 90000 1 1",
      "0",
      "sh -c while :; do sleep 1; done",
      "@proc 7",
      "7 (my (odd) name) S 42 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99000 1 1",
      "65534",
      "",
      "@passwd",
      "root:x:0:0:root:/root:/bin/sh",
      "nobody:x:65534:65534:nobody:/:/bin/false",
    ].join("\n");
    expect(parseDefaultTop(out)).toEqual({
      Titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
      Processes: [
        ["nobody", "7", "42", "0", "09:59", "?", "00:00:00", "[my (odd) name]"],
        ["root", "42", "41", "3", "09:58", "pts/0", "00:00:03", "sh -c while :; do sleep 1; done"],
      ],
    });
  });

  it("keeps ps rows whose PID is the container's, the last column taking the rest of the line", () => {
    const out = ["36 82", "PID   USER     COMMAND", "    1 root     init", "   36 root     sh -c while :; do sleep 1; done", "   82 root     sleep 30", ""].join("\n");
    expect(parsePsTop(out)).toEqual({
      Titles: ["PID", "USER", "COMMAND"],
      Processes: [
        ["36", "root", "sh -c while :; do sleep 1; done"],
        ["82", "root", "sleep 30"],
      ],
    });
  });

  it("refuses ps output without a PID column, saying what to add", () => {
    expect(() => parsePsTop("36\nCOMMAND\nsh\n")).toThrow("Couldn't find PID field in ps output");
  });
});
