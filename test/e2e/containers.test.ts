// Containers from the page: the stack view's form runs a real container in
// the page's VM (crun, namespaces, cgroup limits), the Containers layer shows
// it with its PID 1 and limits, and a terminal opens a shell inside it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, run, runIn, screenshot, terminalText, waitForPrompt } from "./browser.ts";

const VM = "hyperlab-vm";

describe("containers from the page", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1400, height: 900 } });
    await lab.page.goto(lab.site.url);
    await waitForPrompt(lab.page, VM);
  });
  afterAll(async () => {
    await lab?.close();
  });

  const layer = (name: string) => lab.page.locator(`${VM} .stack [data-layer=${name}]`);

  it("runs a container from the form; the Containers layer shows it with its PID 1, hostname, limits and use", async () => {
    const form = lab.page.locator(`${VM} form.run-container`);
    await form.locator("select").first().selectOption("busybox");
    await form.locator("label", { hasText: "command" }).locator("input").fill("sleep 3600");
    await form.locator("label", { hasText: "memory" }).locator("input").fill("64");
    await form.locator("label", { hasText: "CPUs" }).locator("input").fill("0.5");
    await form.locator("label", { hasText: "pids" }).locator("input").fill("32");
    await form.locator("button[data-action=run]").click();
    const item = layer("containers").locator(".item.container[data-status=running]");
    await expect.poll(() => item.count(), { timeout: 60_000, message: "a running container in the Containers layer" }).toBe(1);
    await expect.poll(async () => (await item.textContent()) ?? "", { timeout: 20_000, message: "its PID 1 and current use" }).toMatch(/PID 1\d+ in the VM.*now.*memory [\d.]+ MiB/s);
    const text = (await item.textContent()) ?? "";
    expect(text).toMatch(/busybox:latest/);
    expect(text).toMatch(/limitsmemory 64 MiB · CPU 0\.5 · pids 32/);
    expect(text).toMatch(/hostname[0-9a-f]{12}/);
    await screenshot(lab.page, "containers-running");

    // The PID the layer shows is the container's init as the VM sees it: the runtime says so too.
    const pid = /PID 1(\d+) in the VM/.exec(text)![1]!;
    const out = await run(lab.page, VM, "crun list", new RegExp(`\\s${pid}\\s+running`));
    expect(out).toMatch(/running/);
    // Its limits are in its cgroup.
    await run(lab.page, VM, "cat /sys/fs/cgroup/hyperlab/*/payload/memory.max /sys/fs/cgroup/hyperlab/*/payload/pids.max", /67108864\s+32/);
  });

  it("lists the container under the VM that hosts it in the Hypervisor layer, as `hyperlab stats` does", async () => {
    const name = (await layer("containers").locator(".item.container[data-status=running] strong").textContent())!;
    const vm = layer("hypervisor").locator(".item.vm").first();
    await expect
      .poll(async () => (await vm.textContent()) ?? "", { timeout: 20_000, message: "the container in its VM's entry" })
      .toContain(`containers${name} (busybox:latest, running)`);
  });

  it("shows the container's own namespaces beside the VM's", async () => {
    const table = layer("kernel").locator("table.namespaces");
    await expect.poll(async () => (await table.textContent()) ?? "", { timeout: 20_000 }).toMatch(/pid\d+\d{10}/);
    expect(await table.locator("td.own").count()).toBeGreaterThanOrEqual(5);
  });

  it("shows the container's OCI bundle config in the Runtime layer: its namespaces and limits", async () => {
    const details = layer("runtime").locator("details.bundle").first();
    await expect.poll(() => details.count(), { timeout: 20_000, message: "the running container's bundle in the Runtime layer" }).toBe(1);
    await details.locator("summary").click();
    const body = details.locator("pre");
    await expect.poll(async () => (await body.textContent()) ?? "", { timeout: 20_000, message: "config.json read from the guest" }).toMatch(/"ociVersion"/);
    const config = JSON.parse((await body.textContent())!) as { linux: { namespaces: Array<{ type: string }>; resources: { memory: { limit: number }; pids: { limit: number } } } };
    expect(config.linux.namespaces.map((n) => n.type)).toEqual(expect.arrayContaining(["pid", "mount", "uts", "ipc", "network", "cgroup"]));
    expect(config.linux.resources).toMatchObject({ memory: { limit: 64 * 1024 ** 2 }, pids: { limit: 32 } });
    await screenshot(lab.page, "runtime-bundle");
  });

  it("lists the handout's container systems in the Runtime layer and starts true with each runtime this VM has", async () => {
    const table = layer("runtime").locator("table.systems");
    const states = await table.locator("tr[data-system]").evaluateAll((rows) => rows.map((r) => `${(r as HTMLElement).dataset.system}: ${(r as HTMLElement).dataset.state}`));
    expect(states).toEqual(["crun: runs", "runc: runs", "LXC: runs", "Podman: runs", "Docker engine: not built yet", "CRI-O: cannot run here", "rkt: cannot run here", "Mesos: cannot run here"]);
    expect(await table.locator("tr[data-system=rkt]").textContent()).toContain("archived by the CNCF");
    await layer("runtime").locator("button[data-action=systems]").click();
    for (const runtime of ["crun", "runc"]) {
      const row = table.locator(`tr[data-system=${runtime}]`);
      await expect.poll(() => row.getAttribute("data-ms"), { timeout: 90_000, message: `true started with ${runtime}` }).toMatch(/^\d+$/);
      const cells = await row.locator("td").allTextContents();
      // Its start time, the instructions it cost (millions), and what it left running in the VM: nothing.
      expect(cells.slice(2)).toEqual([expect.stringMatching(/\d/), expect.stringMatching(/^\d+\.\d M$/), "nothing"]);
    }
    await table.scrollIntoViewIfNeeded();
    await screenshot(lab.page, "runtime-systems");
  });

  it("opens a terminal in the container: a shell whose PID 1 is the container's command", async () => {
    const item = layer("containers").locator(".item.container[data-status=running]");
    // The systems panel's containers (true, removed as it ends) leave the layer at its next refresh.
    await expect.poll(() => item.count(), { timeout: 20_000, message: "one running container: the form's (the systems panel's have ended)" }).toBe(1);
    const hostname = /hostname([0-9a-f]{12})/.exec((await item.textContent()) ?? "")![1]!;
    await item.locator("button[data-action=terminal]").click();
    const name = (await item.locator("strong").textContent())!;
    const title = `${name} (container)`;
    await expect.poll(async () => (await terminalText(lab.page, VM, title)) ?? "", { timeout: 20_000, message: "the container shell's prompt" }).toMatch(/# $/);
    await runIn(lab.page, VM, title, "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo", new RegExp(`${hostname}\\s+sleep 3600`));
    await screenshot(lab.page, "containers-terminal");
  });
});
