// The Hypervisor layer's controls on the page: pause and resume a VM, take a
// snapshot and restore it as a new VM, fork, destroy, create; and the VM vs
// container comparison, measured live.
import type { Locator } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, run, runIn, screenshot, terminalText, waitForPrompt } from "./browser.ts";

const VM = "hyperlab-vm";
const THIS = "page-vm-1";

describe("the Hypervisor layer's controls", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1400, height: 1100 } });
    await lab.page.goto(lab.site.url);
    await waitForPrompt(lab.page, VM);
  });
  afterAll(async () => {
    await lab?.close();
  });

  const layer = () => lab.page.locator(`${VM} .stack [data-layer=hypervisor]`);
  const vmItem = (name: string) => layer().locator(`.item.vm[data-vm="${name}"]`);
  const vmNames = async () => layer().locator(".item.vm").evaluateAll((items) => items.map((i) => (i as HTMLElement).dataset.vm!));
  const stateOf = (item: Locator) => item.getAttribute("data-state", { timeout: 1000 }).catch(() => null);
  const status = () => layer().locator(".status").first();
  /** Waits for a VM that was not in `before` to be listed and running; returns its name. */
  const newVm = async (before: string[], what: string): Promise<string> => {
    let name: string | undefined;
    await expect
      .poll(async () => {
        name = (await vmNames()).find((n) => !before.includes(n));
        return name ? stateOf(vmItem(name)) : null;
      }, { timeout: 60_000, message: `${what} to be listed and running` })
      .toBe("running");
    return name!;
  };

  it("pauses this VM (its CPU stops: the element says paused) and resumes it", async () => {
    await vmItem(THIS).locator("button[data-action=pause]").click();
    await expect.poll(() => stateOf(vmItem(THIS)), { timeout: 15_000 }).toBe("paused");
    await expect.poll(() => lab.page.locator(`${VM} header .status`).textContent()).toBe("paused");
    await screenshot(lab.page, "hypervisor-paused");
    await vmItem(THIS).locator("button[data-action=resume]").click();
    await expect.poll(() => stateOf(vmItem(THIS)), { timeout: 15_000 }).toBe("running");
    await run(lab.page, VM, "echo resumed", /\nresumed\s*\n/);
  });

  it("takes a snapshot and restores it as a new VM that has this VM's files", async () => {
    await run(lab.page, VM, "echo taken-before-the-snapshot > /root/mark", /\n[^\n]*[#$] ?$/);
    await vmItem(THIS).locator("button[data-action=snapshot]").click();
    const snapshot = layer().locator(".item.snapshot").first();
    await expect.poll(() => snapshot.count(), { timeout: 60_000, message: "the snapshot in the list" }).toBe(1);
    expect(await status().textContent()).toMatch(/Snapshot of page-vm-1: [\d.]+ MiB in [\d.]+ s/);
    const before = await vmNames();
    await snapshot.locator("button[data-action=restore]").click();
    const restored = await newVm(before, "the restored VM");
    await vmItem(restored).locator("button[data-action=console]").click();
    const title = `${restored} (VM console)`;
    await expect.poll(async () => (await terminalText(lab.page, VM, title)) ?? "", { timeout: 20_000, message: "its console's prompt" }).toMatch(/# $/);
    await runIn(lab.page, VM, title, "cat /root/mark", /taken-before-the-snapshot/);
    await screenshot(lab.page, "hypervisor-restored");
    await vmItem(restored).locator("button[data-action=destroy]").click();
    await expect.poll(() => vmItem(restored).count(), { timeout: 15_000, message: "the destroyed VM to leave the list" }).toBe(0);
  });

  it("forks this VM, and destroying the fork returns its memory to the budget", async () => {
    const budget = () => layer().locator("dl").first().textContent();
    const used = async () => Number(/(\d+) of \d+ MiB reserved/.exec((await budget()) ?? "")?.[1]);
    expect(await used()).toBe(128);
    const before = await vmNames();
    await vmItem(THIS).locator("button[data-action=fork]").click();
    const fork = await newVm(before, "the fork");
    expect(fork).toMatch(/^page-vm-1-fork-\d+$/);
    await expect.poll(used, { timeout: 10_000 }).toBe(256);
    await screenshot(lab.page, "hypervisor-fork");
    await vmItem(fork).locator("button[data-action=destroy]").click();
    await expect.poll(() => vmItem(fork).count(), { timeout: 15_000 }).toBe(0);
    await expect.poll(used, { timeout: 10_000 }).toBe(128);
  });

  it("starts one more VM (booted, and from a snapshot) and one more container, and shows each one's time to start and memory side by side", async () => {
    await layer().locator("button[data-action=compare]").click();
    const table = layer().locator("table.compare");
    await expect.poll(() => table.count(), { timeout: 150_000, message: "the comparison table" }).toBe(1);
    const text = (await table.textContent()) ?? "";
    expect(text).toMatch(/one more VM, booted.*one more VM, from a snapshot.*one more container/);
    expect(text).toMatch(/compare-boot-1.*compare-restore-1.*compare-ctr-1/);
    expect(text).toMatch(/time to start[\d.]+ s[\d.]+ s[\d.]+ s/);
    expect(text).toMatch(/memory it costs128 MiB128 MiB[\d.]+ MiB/);
    const [boot, restore, ctr] = ((await table.getAttribute("data-ms")) ?? "").split(" ").map(Number);
    // A kernel boot takes longer than a container start: the handout's claim, measured.
    expect(boot).toBeGreaterThan(ctr!);
    expect(restore).toBeGreaterThan(0);
    // All three are live: the VMs in this layer, the container in the Containers layer.
    expect(await stateOf(vmItem("compare-boot-1"))).toBe("running");
    expect(await stateOf(vmItem("compare-restore-1"))).toBe("running");
    await expect
      .poll(() => lab.page.locator(`${VM} .stack [data-layer=containers] .item.container[data-container=compare-ctr-1]`).getAttribute("data-status"), { timeout: 15_000 })
      .toBe("running");
    await table.scrollIntoViewIfNeeded();
    await screenshot(lab.page, "hypervisor-compare");
  }, 180_000);
});
