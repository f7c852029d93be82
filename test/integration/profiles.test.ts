// Guest profiles with real guests: the lxc profile started from its own boot
// snapshot through the hypervisor, and an LXC container made, run, limited,
// looked into and removed with LXC's own tools (docs/profiles.md).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hypervisor } from "../../src/hypervisor/hypervisor.ts";
import type { Vm } from "../../src/hypervisor/vm.ts";

const LIMIT = 32 * 1024 * 1024;

describe("the lxc profile", () => {
  let hv: Hypervisor;
  let vm: Vm;
  /** Runs a shell command in the VM; fails the test with its output unless it exits 0. */
  const sh = async (script: string, timeoutMs = 60_000): Promise<string> => {
    const r = await vm.exec(["/bin/sh", "-c", script], { timeoutMs });
    expect(r.exitCode, `'${script}' exited ${r.exitCode}: ${r.stdout}${r.stderr}`).toBe(0);
    return r.stdout;
  };
  /** Polls `script` until its output matches `re`; fails naming what it waited for. */
  const until = async (what: string, script: string, re: RegExp, timeoutMs = 60_000): Promise<string> => {
    const end = Date.now() + timeoutMs;
    let out = "";
    while (Date.now() < end) {
      out = (await vm.exec(["/bin/sh", "-c", script], { timeoutMs })).stdout;
      if (re.test(out)) return out;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; '${script}' last printed: ${out}`);
  };

  beforeAll(async () => {
    hv = await Hypervisor.create({ memoryBudgetMiB: 512, spareWorkers: 0 });
    // The first run on a host builds the profile's boot snapshot (a cold boot that unpacks LXC).
    vm = await hv.createVm({ name: "lxc-host", profile: "lxc", timeoutMs: 240_000 });
  }, 300_000);
  afterAll(async () => {
    await hv?.close();
  });

  it("starts from the profile's own boot snapshot with LXC and its bridge ready", async () => {
    expect(vm.info().profile).toBe("lxc");
    expect(hv.startInfo(vm)?.origin).toBe("snapshot");
    expect(await sh("lxc-start --version")).toBe("5.0.2\n");
    expect(await sh("ip -o -4 addr show lxcbr0")).toContain("inet 10.0.3.1/24");
    // The payload was unpacked and removed at boot.
    expect(await sh("ls /usr/lib/hyperlab/profile/")).toBe("");
  });

  it("runs a busybox container: its own PID 1 and namespaces, its memory limit, a veth on lxcbr0", async () => {
    expect(await sh("lxc-create -n c1 -t busybox")).toBe("");
    await sh(`echo 'lxc.cgroup2.memory.max = ${LIMIT}' >> /var/lib/lxc/c1/config`);
    await sh("lxc-start -n c1");
    const ls = await until("c1 RUNNING with an address on lxcbr0", "lxc-ls -f", /^c1\s+RUNNING\s+\S+\s+\S+\s+10\.0\.3\.\d+\s/m);
    expect(ls.split("\n")[0]).toMatch(/^NAME\s+STATE\s+AUTOSTART\s+GROUPS\s+IPV4\s+IPV6\s+UNPRIVILEGED/);

    // PID 1 inside is the container's init (busybox init from the template's rootfs) ...
    const inside = await sh("lxc-attach -n c1 -- sh -c 'cat /proc/1/comm; readlink /proc/self/ns/pid; readlink /proc/self/ns/uts; hostname; cat /sys/fs/cgroup/memory.max; ip -o -4 addr show eth0'");
    const [pid1, pidNs, utsNs, hostname, memoryMax, eth0] = inside.split("\n");
    expect(pid1).toBe("init");
    // ... which the VM sees as an ordinary process: lxc-info's PID, PID 1 only in the container's namespace.
    const hostPid = Number((await sh("lxc-info -n c1 -p -H")).trim());
    expect(hostPid).toBeGreaterThan(1);
    expect(await sh(`cat /proc/${hostPid}/comm`)).toBe("init\n");
    expect(await sh(`grep NSpid /proc/${hostPid}/status`)).toBe(`NSpid:\t${hostPid}\t1\n`);
    expect(await sh(`readlink /proc/${hostPid}/ns/pid`)).toBe(`${pidNs}\n`);
    // Its namespaces are not the VM's.
    const [vmPidNs, vmUtsNs, vmHostname] = (await sh("readlink /proc/self/ns/pid; readlink /proc/self/ns/uts; hostname")).split("\n");
    expect(pidNs).toMatch(/^pid:\[\d+\]$/);
    expect(pidNs).not.toBe(vmPidNs);
    expect(utsNs).not.toBe(vmUtsNs);
    expect(hostname).toBe("c1");
    expect(vmHostname).not.toBe("c1");
    // The limit set through lxc.cgroup2.memory.max, seen from inside and through LXC.
    expect(Number(memoryMax)).toBe(LIMIT);
    expect(Number(await sh("lxc-cgroup -n c1 memory.max"))).toBe(LIMIT);
    expect(Number(await sh("lxc-cgroup -n c1 memory.current"))).toBeGreaterThan(0);
    // Its eth0 has an address from lxcbr0's subnet; the VM end of its veth is on lxcbr0.
    expect(eth0).toMatch(/inet 10\.0\.3\.\d+\/24/);
    const info = await sh("lxc-info -n c1");
    expect(info).toMatch(/^State:\s+RUNNING$/m);
    const link = /^Link:\s+(veth\S+)$/m.exec(info)?.[1];
    expect(link, info).toBeDefined();
    expect(await sh(`readlink /sys/class/net/${link}/master`)).toMatch(/\/lxcbr0\n$/);
    expect((await sh("ls /sys/class/net/lxcbr0/brif/")).split("\n")).toContain(link);

    await sh("lxc-stop -n c1", 90_000);
    expect(await sh("lxc-info -n c1 -s")).toMatch(/^State:\s+STOPPED$/m);
    await sh("lxc-destroy -n c1");
    expect(await sh("lxc-ls -1")).toBe("");
  }, 300_000);

  it("restores a profile VM's snapshot as that profile without being told which", async () => {
    await sh("echo kept > /root/mark");
    const bytes = await vm.snapshot();
    const copy = await hv.restore(bytes, { name: "lxc-copy" });
    try {
      expect(copy.info().profile).toBe("lxc");
      const r = await copy.exec(["/bin/sh", "-c", "cat /root/mark; lxc-ls --version"], { timeoutMs: 60_000 });
      expect(r.stdout).toBe("kept\n5.0.2\n");
    } finally {
      await copy.destroy();
    }
  }, 180_000);
});
