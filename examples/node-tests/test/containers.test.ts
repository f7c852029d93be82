// A VM per test from hyperlab's test lab: commands in the guest, containers
// in it, files in and out. Each test gets a fresh VM from the lab's warm pool;
// the lab destroys it after the test and ends every VM after the file.
import { isHyperlabError } from "hyperlab";
import { testLab } from "hyperlab/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const lab = testLab({ afterEach, afterAll });
// The lab's hypervisor and its warm pool, ready before the first test.
beforeAll(() => lab.ready());

describe("a VM of the lab", () => {
  it("runs a command in the guest and returns its status, stdout and stderr", async () => {
    const vm = await lab.vm();
    const r = await vm.exec("echo out; echo err >&2; exit 3");
    expect(r).toEqual({ status: 3, stdout: "out\n", stderr: "err\n" });
  });

  it("runs a container to its end, as docker run --rm does", async () => {
    const vm = await lab.vm();
    const r = await vm.run("busybox", "echo pid $$ on $(hostname)", { hostname: "box1" });
    expect(r).toMatchObject({ status: 0, stdout: "pid 1 on box1\n", stderr: "" });
    // --rm: nothing is left behind.
    expect(vm.containers.ps({ all: true })).toEqual([]);
  });

  it("runs two versions of one interpreter side by side", async () => {
    const vm = await lab.vm();
    const [old, current] = await Promise.all([vm.run("lua:5.1", ["lua", "-v"]), vm.run("lua:5.4", ["lua", "-v"])]);
    expect(old.stdout + old.stderr).toMatch(/^Lua 5\.1/);
    expect(current.stdout + current.stderr).toMatch(/^Lua 5\.4/);
  });

  it("feeds a container's standard input and reports its exit status", async () => {
    const vm = await lab.vm();
    const r = await vm.run("busybox", "wc -l; exit 7", { stdin: "a\nb\nc\n" });
    expect(r).toMatchObject({ status: 7, stdout: "3\n" });
  });

  it("puts files into the guest and gets what the guest wrote", async () => {
    const vm = await lab.vm();
    await vm.put("/root/greet.sh", "#!/bin/sh\necho \"hello, $1\" > /root/greeting\n", { mode: 0o755 });
    expect((await vm.exec(["/root/greet.sh", "lab"])).status).toBe(0);
    expect(await vm.getText("/root/greeting")).toBe("hello, lab\n");
  });

  it("gives each test a fresh VM: nothing of the test before is there", async () => {
    const vm = await lab.vm();
    expect((await vm.exec("test -e /root/greeting")).status).toBe(1);
  });

  it("refuses an image it does not have, with a coded error", async () => {
    const vm = await lab.vm();
    const err = await vm.run("no-such-image").catch((e: unknown) => e);
    expect(isHyperlabError(err, "IMAGE_NOT_FOUND")).toBe(true);
  });
});
