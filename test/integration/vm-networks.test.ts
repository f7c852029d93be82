// Networks of VMs with real guests: each VM's virtio-net card on a hypervisor
// network (a switch distributed over the VMs' workers), VM-to-VM traffic by
// name, isolation between networks, forks with their own MAC and address, and
// the errors a user sees for bad input.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Hypervisor } from "../../src/hypervisor/hypervisor.ts";
import type { Vm } from "../../src/hypervisor/vm.ts";
import { type DaemonProcess, hyperlab, startDaemon } from "./daemon-process.ts";
import { errorOf } from "./guest.ts";

const MIB = 96;

async function sh(vm: Vm, script: string, timeoutMs = 20_000): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return vm.exec(["/bin/sh", "-c", script], { timeoutMs });
}

describe("VM networks", () => {
  let hv: Hypervisor;
  let a: Vm;
  let b: Vm;

  beforeAll(async () => {
    hv = await Hypervisor.create({ memoryBudgetMiB: 8 * MIB, spareWorkers: 0 });
    [a, b] = await Promise.all([hv.createVm({ name: "a", memoryMiB: MIB }), hv.createVm({ name: "b", memoryMiB: MIB })]);
  }, 120_000);

  afterAll(async () => {
    await hv?.close();
  });

  it("gives each VM on the default network its own MAC and address, set on the guest's eth0", async () => {
    expect(a.info().network?.name).toBe("default");
    expect(a.info().network?.mac).not.toBe(b.info().network?.mac);
    expect(a.info().network?.address).not.toBe(b.info().network?.address);
    const link = await sh(b, "cat /sys/class/net/eth0/address; ip -4 addr show eth0");
    expect(link.stdout).toContain(b.info().network!.mac);
    expect(link.stdout).toContain(`inet ${b.info().network!.address}/24`);
    expect(hv.networks.inspect("default").vms.map((m) => m.vm).sort()).toEqual(["a", "b"]);
  });

  it("lets a VM ping another by name and by name.hyperlab.internal", async () => {
    const r = await sh(a, "ping -c 2 -W 5 b && ping -c 1 -W 5 b.hyperlab.internal");
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`PING b (${b.info().network!.address})`);
    expect(r.stdout).toMatch(/2 packets transmitted, 2 packets received/);
  }, 60_000);

  it("carries TCP between VMs by name (busybox nc)", async () => {
    const server = b.spawn(["/bin/sh", "-c", "echo hello-from-b | nc -l -p 7000"], {});
    try {
      // The listener may take a moment to bind: retry the connect a few times.
      const r = await sh(a, "for i in 1 2 3 4 5 6 7 8 9 10; do nc b 7000 </dev/null && exit 0; sleep 0.3; done; exit 1", 30_000);
      expect(r.stdout).toContain("hello-from-b");
      expect(r.exitCode).toBe(0);
    } finally {
      await Promise.resolve(server.kill()).catch(() => {});
    }
  }, 60_000);

  it("keeps networks apart: a VM on another network cannot reach the default one", async () => {
    hv.networks.create("lab", { subnet: "10.100.50.0/24", isolated: true });
    const c = await hv.createVm({ name: "c", memoryMiB: MIB, net: "lab" });
    try {
      expect(c.info().network).toMatchObject({ name: "lab", address: "10.100.50.2" });
      const byName = await sh(c, "ping -c 1 -W 2 b");
      expect(byName.exitCode).not.toBe(0);
      expect(byName.stderr).toContain("bad address 'b'");
      // Even with b's address given, b's network carries no frame from c (the subnets differ: a route is made for the test).
      const byAddress = await sh(c, `ip route add 10.100.0.0/24 dev eth0; ping -c 2 -W 2 ${b.info().network!.address}`);
      expect(byAddress.stdout).toMatch(/2 packets transmitted, 0 packets received/);
      expect(hv.networks.inspect("lab").vms.map((m) => m.vm)).toEqual(["c"]);
    } finally {
      await c.destroy();
    }
  }, 90_000);

  it("gives a fork a MAC and address of its own, and the fork reaches its parent by name", async () => {
    const [fork] = await a.fork(1);
    try {
      const net = fork!.info().network!;
      expect(net.name).toBe("default");
      expect(net.mac).not.toBe(a.info().network!.mac);
      expect(net.address).not.toBe(a.info().network!.address);
      const r = await sh(fork!, "cat /sys/class/net/eth0/address; ping -c 1 -W 5 a");
      expect(r.stdout).toContain(net.mac);
      expect(r.stdout).toMatch(/1 packets transmitted, 1 packets received/);
      const fromParent = await sh(a, `ping -c 1 -W 5 ${fork!.name}`);
      expect(fromParent.exitCode).toBe(0);
    } finally {
      await fork?.destroy();
    }
  }, 90_000);

  it("names the known networks when a VM asks for an unknown one", async () => {
    const err = await errorOf(hv.createVm({ name: "x", net: "nope" }));
    expect(err.code).toBe("NETWORK_NOT_FOUND");
    expect(err.message).toMatch(/no network named 'nope' \(there are: default/);
  });

  it("refuses an overlapping subnet naming both networks", async () => {
    hv.networks.create("one", { subnet: "10.100.60.0/24" });
    const err = await errorOf(Promise.resolve().then(() => hv.networks.create("two", { subnet: "10.100.60.128/25" })));
    expect(err.message).toBe("subnet 10.100.60.128/25 of network two overlaps subnet 10.100.60.0/24 of network one; choose a subnet that does not");
    hv.networks.remove("one");
  });

  it("refuses to remove a network in use, naming its VMs", async () => {
    const err = await errorOf(Promise.resolve().then(() => hv.networks.remove("default")));
    expect(err.code).toBe("NETWORK_IN_USE");
    expect(err.message).toMatch(/network default is in use by VMs a, b/);
  });

  it("names the wrong part of a malformed CIDR", async () => {
    const bad = async (cidr: string) => (await errorOf(Promise.resolve().then(() => hv.networks.create("bad", { subnet: cidr })))).message;
    expect(await bad("10.100.70.0")).toMatch(/the '\/prefix' part is missing/);
    expect(await bad("10.100.300.0/24")).toMatch(/the address '10.100.300.0' is not an IPv4 address/);
    expect(await bad("10.100.70.0/33")).toMatch(/the prefix length '33' must be a number from 8 to 30/);
    expect(await bad("10.100.70.5/24")).toMatch(/host bits set for a \/24; did you mean 10.100.70.0\/24\?/);
  });
});

describe("hyperlab vm net through the daemon", () => {
  let dir: string;
  let socket: string;
  let daemon: DaemonProcess;
  const hl = (args: string[]) => hyperlab(socket, args, {});

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperlab-vmnet-"));
    socket = join(dir, "hyperlab.sock");
    daemon = await startDaemon(socket, ["--warm-pool", "0"], 90_000);
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates, lists, inspects and removes networks, and puts a VM on one by name", async () => {
    expect(await hl(["vm", "net", "create", "lab", "--subnet", "10.100.9.0/24", "--isolated"])).toMatchObject({ code: 0, stdout: "lab 10.100.9.0/24\n" });
    const bad = await hl(["vm", "net", "create", "lab2", "--subnet", "10.100.9.0/25"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("subnet 10.100.9.0/25 of network lab2 overlaps subnet 10.100.9.0/24 of network lab");
    const unknown = await hl(["vm", "create", "--name", "n1", "--net", "nope"]);
    expect(unknown.stderr).toMatch(/no network named 'nope' \(there are: default, lab/);
    expect(await hl(["vm", "create", "--name", "n1", "--net", "lab"])).toMatchObject({ code: 0, stdout: "n1\n" });
    const ls = await hl(["vm", "net", "ls"]);
    expect(ls.stdout).toMatch(/^lab\s+10\.100\.9\.0\/24\s+10\.100\.9\.1\s+yes\s+n1$/m);
    const inspect = JSON.parse((await hl(["vm", "net", "inspect", "lab"])).stdout) as { vms: Array<{ vm: string; address: string }> };
    expect(inspect.vms).toMatchObject([{ vm: "n1", address: "10.100.9.2" }]);
    const inUse = await hl(["vm", "net", "rm", "lab"]);
    expect(inUse.stderr).toContain("network lab is in use by VM n1; destroy it first");
    const status = await fetch409(socket, "/v1/vm-networks/lab");
    expect(status).toMatchObject({ status: 409, vms: ["n1"] });
    expect((await hl(["vm", "rm", "n1"])).code).toBe(0);
    expect(await hl(["vm", "net", "rm", "lab"])).toMatchObject({ code: 0, stdout: "lab\n" });
  }, 120_000);
});

/** DELETE over the daemon's socket: the status and the error body's detail. */
async function fetch409(socket: string, path: string): Promise<{ status: number; vms?: string[] }> {
  const { request } = await import("node:http");
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: "DELETE" }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => {
        const body = JSON.parse(text || "{}") as { detail?: { vms?: string[] }; vms?: string[] };
        resolve({ status: res.statusCode ?? 0, vms: body.detail?.vms ?? body.vms });
      });
    });
    req.on("error", reject);
    req.end();
  });
}
