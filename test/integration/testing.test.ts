// hyperlab/testing as a test author uses it: a lab of fresh VMs hooked into
// vitest, its exec/run/put/get, and clean-up whatever the test did,
// including under node:test in a process of its own (testing-node-test.ts).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Vm } from "../../src/hypervisor/vm.ts";
import { testLab } from "../../src/testing/index.ts";
import { errorOf } from "./guest.ts";

const lab = testLab({ afterEach, afterAll, warm: 1 });

describe("a test lab", () => {
  let earlier: Vm | undefined;

  it("gives a running VM whose exec returns status, stdout and stderr, 128 + n for a signal", async () => {
    const vm = await lab.vm();
    earlier = vm.vm;
    expect(vm.vm.state).toBe("running");
    expect(await vm.exec("echo out; echo err >&2; exit 4")).toEqual({ status: 4, stdout: "out\n", stderr: "err\n" });
    expect(await vm.exec(["/bin/sh", "-c", "kill -TERM $$"])).toEqual({ status: 143, stdout: "", stderr: "" });
    expect((await vm.exec("cat", { stdin: "fed\n" })).stdout).toBe("fed\n");
  });

  it("destroyed the VM of the test before once that test ended", () => {
    expect(earlier?.state).toBe("destroyed");
  });

  it("puts and gets files, and runs containers to their end with their status and output", async () => {
    const vm = await lab.vm();
    await vm.put("/srv/data/in.txt", "one\ntwo\n");
    expect(await vm.getText("/srv/data/in.txt")).toBe("one\ntwo\n");
    expect(await vm.get("/srv/data/in.txt")).toEqual(new TextEncoder().encode("one\ntwo\n"));
    const r = await vm.run("busybox", "cat; echo oops >&2; exit 5", { stdin: "piped\n" });
    expect(r).toMatchObject({ status: 5, stdout: "piped\n", stderr: "oops\n" });
    expect(vm.containers.ps({ all: true })).toEqual([]);
    const kept = await vm.run("busybox", ["true"], { keep: true });
    expect(vm.containers.ps({ all: true }).map((c) => c.id)).toEqual([kept.id]);
  });

  it("kills a container that outlives its time limit and fails with TIMEOUT", async () => {
    const vm = await lab.vm();
    const err = await errorOf(vm.run("busybox", ["sleep", "600"], { timeoutMs: 1500 }));
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toMatch(/did not end within 1500 ms; it was killed/);
  });

  it("destroys a VM that became ready only after its test's clean-up ran", async () => {
    const late = lab.vm();
    await lab.cleanup();
    const err = await errorOf(late);
    expect(err.code).toBe("VM_INVALID_STATE");
    expect(err.message).toMatch(/was ready only after its test had ended/);
    expect((await lab.hypervisor()).list().filter((v) => v.state !== "destroyed")).toEqual([]);
  });

  it("withVm destroys its VM when the function throws", async () => {
    let inside: Vm | undefined;
    const thrown = await lab
      .withVm((vm) => {
        inside = vm.vm;
        throw new Error("boom");
      })
      .catch((e: Error) => e.message);
    expect(thrown).toBe("boom");
    expect(inside?.state).toBe("destroyed");
  });

  it("refuses VMs once closed, and closing ends every VM", async () => {
    const own = testLab({ afterEach: false, afterAll: false, warm: 0 });
    const vm = await own.vm();
    await own.close();
    expect(vm.vm.state).toBe("destroyed");
    expect((await errorOf(own.vm())).message).toMatch(/the test lab is closed/);
  });
});

describe("a test lab under node:test", () => {
  it("cleans up after a failed and a timed-out test, so the process ends on its own", async () => {
    const fixture = fileURLToPath(new URL("./testing-node-test.ts", import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", "--test", "--test-reporter=tap", fixture], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const ended = new Promise<number | null>((resolve) => child.on("close", resolve));
    const hung = new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 50_000).unref());
    const code = await Promise.race([ended, hung]);
    if (code === "hung") child.kill("SIGKILL");
    expect(code, out).toBe(1);
    expect(out).toMatch(/not ok \d+ - fails on purpose while its VM runs/);
    expect(out).toMatch(/not ok \d+ - times out while its VM runs a long command/);
    // Node's runner counts a timed-out test as cancelled (Node 20) or failed:
    // either way two tests, none passed.
    const count = (what: string) => Number(new RegExp(`# ${what} (\\d+)`).exec(out)?.[1] ?? 0);
    expect(count("fail") + count("cancelled"), out).toBe(2);
    expect(count("pass"), out).toBe(0);
  }, 60_000);
});
