// The podman profile with a real guest: Podman 4.3 as root, started from the
// profile's own boot snapshot through the hypervisor, driven with podman's own
// commands (docs/profiles.md): run, ps, logs, exec, stop, rm, images, build,
// networks with netavark and aardvark-dns, and no daemon left behind.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROCESS_NAMES_SCRIPT, processCounts } from "../../src/containers/container-systems.ts";
import { Hypervisor } from "../../src/hypervisor/hypervisor.ts";
import type { Vm } from "../../src/hypervisor/vm.ts";
import { PODMAN_PROCESSES_SCRIPT, podmanProcesses } from "../../src/web/stack/podman-panel.ts";

describe("the podman profile", () => {
  let hv: Hypervisor;
  let vm: Vm;
  /** Runs a shell command in the VM; fails the test with its output unless it exits 0. */
  const sh = async (script: string, timeoutMs = 120_000): Promise<string> => {
    const r = await vm.exec(["/bin/sh", "-c", script], { timeoutMs });
    expect(r.exitCode, `'${script}' exited ${r.exitCode}: ${r.stdout}${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const processes = async () => processCounts(await sh(PROCESS_NAMES_SCRIPT));

  beforeAll(async () => {
    hv = await Hypervisor.create({ memoryBudgetMiB: 512, spareWorkers: 0 });
    // The first run on a host builds the profile's boot snapshot (a cold boot that unpacks Podman and loads busybox).
    vm = await hv.createVm({ name: "podman-host", profile: "podman", timeoutMs: 300_000 });
  }, 360_000);
  afterAll(async () => {
    await hv?.close();
  });

  it("starts from its boot snapshot with the engine's busybox in podman's store and no daemon running", async () => {
    expect(vm.info().profile).toBe("podman");
    expect(vm.info().memoryMiB).toBe(256);
    expect(hv.startInfo(vm)?.origin).toBe("snapshot");
    expect(await sh("podman --version")).toBe("podman version 4.3.1\n");
    expect(await sh("podman images --format '{{.Repository}}:{{.Tag}}'")).toBe("docker.io/library/busybox:latest\n");
    expect(await sh("podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupsVersion}} {{.Host.NetworkBackend}} {{.Store.GraphDriverName}}'")).toBe("crun v2 netavark overlay\n");
    const running = await processes();
    for (const daemon of ["podman", "conmon", "dockerd", "containerd"]) expect(running.has(daemon), daemon).toBe(false);
  });

  it("runs a detached container: ps, logs, exec, its limit and namespaces, conmon as its monitor; stop and rm leave nothing", async () => {
    const before = await processes();
    const id = (await sh("podman run -d --name web --memory 32m busybox sh -c 'echo started; exec sleep 3600'")).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(await sh("podman ps --format '{{.Names}} {{.Status}}'")).toMatch(/^web Up /);
    expect(await sh("podman logs web")).toBe("started\n");
    // Daemonless: what runs for the container is one conmon and the container's process; podman itself has exited.
    const during = await processes();
    expect(during.get("conmon") ?? 0).toBe((before.get("conmon") ?? 0) + 1);
    expect(during.get("sleep") ?? 0).toBe((before.get("sleep") ?? 0) + 1);
    expect(during.has("podman")).toBe(false);
    // What the stack view's Podman section reads from the same listing: web's conmon, and the container's process under it.
    const view = podmanProcesses(await sh(PODMAN_PROCESSES_SCRIPT));
    expect(view.podman).toBe(0);
    expect(view.containers).toEqual([expect.objectContaining({ name: "web", id: id.slice(0, 12), command: "sleep 3600" })]);
    const [pid1, hostname, memoryMax, eth0] = (await sh("podman exec web sh -c 'cat /proc/1/cmdline | tr \"\\0\" \" \"; echo; hostname; cat /sys/fs/cgroup/memory.max; ip -o -4 addr show eth0'")).split("\n");
    expect(pid1).toBe("sleep 3600 ");
    expect(hostname).toBe(id.slice(0, 12));
    expect(memoryMax).toBe(String(32 * 1024 * 1024));
    expect(eth0).toMatch(/inet 10\.88\.0\.\d+\/16/);

    await sh("podman stop -t 1 web");
    expect(await sh("podman ps -a --format '{{.Names}} {{.Status}}'")).toMatch(/^web Exited \(137\) /);
    await sh("podman rm web");
    expect(await sh("podman ps -a -q")).toBe("");
    const after = await processes();
    expect(after.get("conmon") ?? 0).toBe(before.get("conmon") ?? 0);
  });

  it("publishes a port through netavark's NAT rules (iptables-nft in the guest kernel's netfilter)", async () => {
    await sh("podman run -d --name www -p 8080:80 busybox httpd -f -p 80 -h /etc");
    let page = "";
    for (let i = 0; i < 20 && !page; i++) page = (await vm.exec(["/bin/sh", "-c", "wget -qO- http://127.0.0.1:8080/hostname"], { timeoutMs: 30_000 })).stdout;
    expect(page.trim()).toMatch(/^[0-9a-f]{12}$/);
    expect(await sh("iptables -t nat -S")).toMatch(/--dport 8080 .*-j DNAT --to-destination 10\.88\.0\.\d+:80/);
    await sh("podman rm -f -t 0 www");
  });

  it("resolves containers by name on a network of its own (aardvark-dns)", async () => {
    await sh("podman network create n1");
    await sh("podman run -d --name a --network n1 busybox sleep 600");
    const answer = await sh("podman run --rm --network n1 busybox nslookup a");
    expect(answer).toMatch(/Name:\s+a\.dns\.podman\s+Address: 10\.89\.0\.\d+/);
    await sh("podman rm -f -t 0 a && podman network rm n1");
  });

  it("builds an image with a RUN step and runs it", async () => {
    await sh("mkdir -p /tmp/ctx && printf 'FROM busybox\\nRUN echo built > /built && rm /bin/ls\\nCMD cat /built\\n' > /tmp/ctx/Containerfile");
    const log = await sh("podman build -t mine /tmp/ctx 2>&1", 240_000);
    expect(log).toContain("Successfully tagged localhost/mine:latest");
    expect(await sh("podman run --rm mine")).toBe("built\n");
    // The deleted file is a whiteout in the image's top layer (overlayfs on the store's tmpfs).
    const r = await vm.exec(["/bin/sh", "-c", "podman run --rm mine ls"], { timeoutMs: 60_000 });
    expect(r.exitCode).toBe(127);
    expect(await sh("podman images --format '{{.Repository}}:{{.Tag}}'")).toContain("localhost/mine:latest\n");
  });
});
