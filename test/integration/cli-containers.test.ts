import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const bin = fileURLToPath(new URL("../../bin/hyperlab.js", import.meta.url));
// A data root of these tests' own: the user's default store may hold images
// they built, which `images` would list.
const dataHome = mkdtempSync(join(tmpdir(), "hyperlab-cli-containers-"));
afterAll(() => rmSync(dataHome, { recursive: true, force: true }));

function hyperlab(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 120_000, env: { ...process.env, XDG_DATA_HOME: dataHome } }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
    });
  });
}

describe("hyperlab's container commands", () => {
  it("run --rm busybox prints PID 1 and the container's host name", async () => {
    const r = await hyperlab(["run", "--rm", "busybox", "sh", "-c", "echo $$; hostname"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^1\n[0-9a-f]{12}\n$/);
    expect(r.code).toBe(0);
  });

  it("run lua:5.1 and lua:5.4 print different versions of the same language", async () => {
    const [a, b] = await Promise.all([hyperlab(["run", "--rm", "lua:5.1", "lua", "-v"]), hyperlab(["run", "--rm", "lua:5.4", "lua", "-v"])]);
    expect(a.stdout + a.stderr).toMatch(/^Lua 5\.1\.\d/);
    expect(b.stdout + b.stderr).toMatch(/^Lua 5\.4\.\d/);
  });

  it("exits with the container's exit status", async () => {
    const r = await hyperlab(["run", "--rm", "--network", "none", "busybox", "sh", "-c", "exit 42"]);
    expect(r.code).toBe(42);
    const missing = await hyperlab(["run", "--rm", "--network", "none", "busybox", "no-such-command"]);
    expect(missing.code, missing.stderr).toBe(127);
    expect(missing.stderr).toContain('exec: "no-such-command": executable file not found in $PATH: unknown [CONTAINER_START_FAILED]');
  });

  it("rejects a bad limit and an unknown image with status 125 before booting anything", async () => {
    const bad = await hyperlab(["run", "--memory", "12x", "busybox", "true"]);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toMatch(/^hyperlab: error: invalid --memory '12x': use a positive number/);
    const neg = await hyperlab(["run", "--cpus", "-1", "busybox", "true"]);
    expect(neg.code).toBe(125);
    expect(neg.stderr).toMatch(/invalid --cpus '-1'/);
    const missing = await hyperlab(["run", "nginx"]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toMatch(/no such image: nginx\. Images available: busybox:latest, lua:5\.1, lua:5\.4/);
  });

  it("images lists the store as Docker does", async () => {
    const r = await hyperlab(["images"]);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2).join(":"))).toEqual(["busybox:latest", "lua:5.1", "lua:5.4"]);
  });
});
