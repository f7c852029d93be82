// The hypervisor's networks with workers that stand in for VMs' workers: what
// each guest's /etc/hosts ends up as when VMs join and leave at the same time
// (the real guests' side is in test/integration/vm-networks.test.ts).
import { describe, expect, it } from "vitest";
import { Networks } from "../../../src/hypervisor/networks.ts";
import type { VmWorker } from "../../../src/hypervisor/rpc.ts";

/** A worker whose guest keeps the last /etc/hosts written to it; plugging in takes `plugMs`. */
function recordingWorker(plugMs: number): { worker: VmWorker; hosts: () => string } {
  let hosts = "";
  const api = {
    async plugNetwork(plug: { hosts: string }) {
      await new Promise((r) => setTimeout(r, plugMs));
      hosts = plug.hosts;
    },
    async setHosts(text: string) {
      hosts = text;
    },
    async addNetworkPeer() {},
    async dropNetworkPeer() {},
  };
  return { worker: { api } as unknown as VmWorker, hosts: () => hosts };
}

const names = (hosts: string) =>
  hosts
    .split("\n")
    .filter((l) => l.endsWith(".hyperlab.internal"))
    .map((l) => l.split(" ")[1])
    .sort();

describe("Networks", () => {
  it("leaves every guest's /etc/hosts naming all members when VMs join at once", async () => {
    const networks = new Networks();
    // a plugs in slowly: b joins (and rewrites a's hosts) while a's plug is still under way.
    const a = recordingWorker(30);
    const b = recordingWorker(0);
    const c = recordingWorker(5);
    await Promise.all([networks.attach("a", a.worker, "default"), networks.attach("b", b.worker, "default"), networks.attach("c", c.worker, "default")]);
    for (const w of [a, b, c]) expect(names(w.hosts())).toEqual(["a", "b", "c"]);
  });

  it("drops a member's name from the others when it leaves, even while another joins", async () => {
    const networks = new Networks();
    const a = recordingWorker(0);
    const b = recordingWorker(0);
    const c = recordingWorker(20);
    await networks.attach("a", a.worker, "default");
    await networks.attach("b", b.worker, "default");
    await Promise.all([networks.attach("c", c.worker, "default"), networks.detach("b")]);
    expect(names(a.hosts())).toEqual(["a", "c"]);
    expect(names(c.hosts())).toEqual(["a", "c"]);
    expect(networks.networkOf("b")).toBeUndefined();
  });

  it("gives each member its own address and refuses a second attach of the same VM", async () => {
    const networks = new Networks();
    const a = recordingWorker(0);
    const [ma, mb] = await Promise.all([networks.attach("a", a.worker, "default"), networks.attach("b", recordingWorker(0).worker, "default")]);
    expect(ma!.address).not.toBe(mb!.address);
    await expect(networks.attach("a", a.worker, "default")).rejects.toThrow(/VM a is on network default already/);
    expect(await networks.attach("a", a.worker, "none")).toBeUndefined();
  });

  it("starts a VM whose network has a member going away: that member's failures are not the new VM's", async () => {
    const networks = new Networks();
    const dying = recordingWorker(0);
    await networks.attach("old", dying.worker, "default");
    // Its worker ends as the new VM joins (its VM destroyed by another task), before its detach has run.
    (dying.worker.api as unknown as { addNetworkPeer: () => Promise<void> }).addNetworkPeer = () => Promise.reject(new Error("the VM's worker was ended by the host"));
    const fresh = recordingWorker(0);
    await expect(networks.attach("new", fresh.worker, "default")).resolves.toMatchObject({ vm: "new" });
    expect(names(fresh.hosts())).toEqual(["new", "old"]);
    await networks.detach("old");
    expect(names(fresh.hosts())).toEqual(["new"]);
  });
});
