// The package as this project installed it: what CI checks when it runs this
// example from the packed tarball (hyperlab's npm run test:package).
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { snapshotCacheDir } from "hyperlab";
import { testLab } from "hyperlab/testing";
import { afterAll, describe, expect, it } from "vitest";

const project = process.cwd();
const bin = join(project, "node_modules", ".bin", "hyperlab");

describe("the installed hyperlab package", () => {
  it("runs its command as compiled JavaScript, with no TypeScript compiler installed", () => {
    expect(execFileSync(bin, ["--version"], { encoding: "utf8" })).toMatch(/^hyperlab \d+\.\d+\.\d+\n$/);
    expect(execFileSync(bin, ["--help"], { encoding: "utf8" })).toMatch(/^Usage: hyperlab COMMAND/);
    for (const compiler of ["tsx", "typescript", "esbuild"]) expect(existsSync(join(project, "node_modules", compiler)), compiler).toBe(false);
  });

  it("keeps its boot snapshot in this project's node_modules/.cache/hyperlab", async () => {
    const lab = testLab({ afterAll, warm: 0 });
    await lab.withVm(async (vm) => expect((await vm.exec("true")).status).toBe(0));
    expect(snapshotCacheDir()).toBe(join(project, "node_modules", ".cache", "hyperlab"));
    expect(readdirSync(snapshotCacheDir()).some((f) => f.endsWith(".hlsnap"))).toBe(true);
  });

  it("runs the Node API example of docs/node-api.md as a project would", () => {
    // run-packed.sh copies examples/node-api/run-container.mjs here.
    const out = execFileSync(process.execPath, [join(project, "run-container.mjs")], { encoding: "utf8", timeout: 120_000 });
    expect(out).toMatch(/^kernel 6\.1\.\d+, exit 0\n\w+: pid 1 in [0-9a-f]{12}, exit 0\nas expected: no such image: nginx\./);
  });
});
