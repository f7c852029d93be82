import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadNodeImage } from "../../src/hardware/node.ts";

const bin = fileURLToPath(new URL("../../bin/hyperlab.js", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function hyperlab(args: string[], drive?: (child: ChildProcess, out: { stdout: string; stderr: string }) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    const out = { stdout: "", stderr: "" };
    child.stdout!.on("data", (d: Buffer) => (out.stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out.stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, ...out }));
    if (drive) drive(child, out);
    else child.stdin!.end();
  });
}

/** Polls until `test` holds, failing with what it waited for. */
async function until(what: string, test: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("hyperlab boot", () => {
  it("--exec prints the command's output and exits 0", async () => {
    const { release } = await loadNodeImage();
    const r = await hyperlab(["boot", "--exec", "uname -r"]);
    expect(r.stdout).toBe(`${release}\n`);
    expect(r.code).toBe(0);
  });

  it("--exec exits with the command's exit status", async () => {
    const r = await hyperlab(["boot", "--exec", "echo partial; exit 3"]);
    expect(r.stdout).toBe("partial\n");
    expect(r.code).toBe(3);
  });

  it("rejects a bad option before booting, with exit status 125", async () => {
    const r = await hyperlab(["boot", "--memory", "12x", "--exec", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe("hyperlab: error: --memory must be a positive number, got '12x' [INVALID_ARGUMENT]\n");
  });

  it("reports a kernel panic as an error with exit status 125", async () => {
    const r = await hyperlab(["boot", "--cmdline", "init=/nonexistent", "--exec", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^hyperlab: error: the guest kernel panicked: Kernel panic - not syncing: Attempted to kill init!/);
  });

  it("attaches the console: typed commands run, Ctrl-] detaches and powers off", async () => {
    const r = await hyperlab(["boot"], (child, out) => {
      void (async () => {
        await until("the guest to be ready", () => out.stderr.includes("guest ready in"));
        child.stdin!.write("echo hello-$((6*7))\r");
        await until("the command's output", () => out.stdout.includes("hello-42"));
        child.stdin!.write("\x1d");
      })().catch((err: Error) => {
        child.kill();
        out.stderr += err.message;
      });
    });
    expect(r.stderr).toContain("press Ctrl-] to detach");
    expect(r.stdout).toContain("hello-42");
    expect(r.stderr).toContain("detached; powering off");
    expect(r.code).toBe(0);
  });

  it("exits 0 when the guest powers itself off", async () => {
    const r = await hyperlab(["boot"], (child, out) => {
      void until("the guest to be ready", () => out.stderr.includes("guest ready in")).then(() => child.stdin!.write("poweroff\r"));
    });
    expect(r.stdout).toMatch(/reboot: (System halted|Power down)/);
    expect(r.code).toBe(0);
  });
});
