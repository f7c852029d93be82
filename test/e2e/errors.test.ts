// Faults on the page are shown in place, with what happened and what to do.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, runningVmWorker, screenshot, waitForPrompt, waitForVm } from "./browser.ts";

describe("errors on the page", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1100, height: 600 } });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("names the file that failed to load (the boot snapshot a page restores) and says what to do", async () => {
    const { page, site } = lab;
    const snapshot = /\/assets\/boot-\d+m-[\w-]+\.hlsnap$/;
    await page.route(snapshot, (route) => route.fulfill({ status: 404, body: "gone" }));
    await page.goto(site.url);
    const view = await waitForVm(page, "hyperlab-vm", "the error for the missing boot snapshot", (v) => v.state === "error", 30_000);
    await screenshot(page, "error-asset");
    expect(view.errorCode).toBe("IMAGE_MISSING");
    expect(view.error).toMatch(/the boot snapshot \(128 MiB\) could not be fetched/);
    expect(view.error).toMatch(/HTTP 404/);
    expect(view.error).toMatch(/Reload the page; if it happens again, the site is missing this file/);
    await page.unroute(snapshot);
  });

  it("names a kernel file that failed to load for a cold boot", async () => {
    const { page } = lab;
    const vmlinux = /\/assets\/vmlinux-[\w-]+\.bin$/;
    await page.route(vmlinux, (route) => route.fulfill({ status: 404, body: "gone" }));
    await page.evaluate(() => {
      document.querySelector("main")!.innerHTML = '<hyperlab-vm id="cold" cmdline="quiet"></hyperlab-vm>';
    });
    const view = await waitForVm(page, "#cold", "the error for the missing kernel", (v) => v.state === "error", 30_000);
    expect(view.errorCode).toBe("IMAGE_MISSING");
    expect(view.error).toMatch(/guest image file vmlinux\.bin could not be read/);
    expect(view.error).toMatch(/HTTP 404/);
    await page.unroute(vmlinux);
  });

  it("shows a guest kernel panic with the kernel's own line", async () => {
    const { page } = lab;
    await page.evaluate(() => {
      document.querySelector("main")!.innerHTML = '<hyperlab-vm id="bad" cmdline="init=/nonexistent"></hyperlab-vm>';
    });
    const view = await waitForVm(page, "#bad", "the guest panic to be shown", (v) => v.state === "error", 90_000);
    await screenshot(page, "error-panic");
    expect(view.errorCode).toBe("GUEST_PANIC");
    expect(view.error).toMatch(/Kernel panic - not syncing/);
    expect(view.error).toMatch(/Restart/);
  });

  it("shows a VM whose worker died, with what to do, and restarts it", async () => {
    const { page, site } = lab;
    await page.goto(site.url);
    await waitForPrompt(page, "hyperlab-vm");
    // The worker that runs the VM ends itself, as a crash would; the browser tells the page nothing.
    const worker = await runningVmWorker(page);
    await worker.evaluate(() => (globalThis as unknown as { close(): void }).close()).catch(() => {});
    // A ping unanswered for 5 s means a dead worker, but while a snapshot is in flight (the page saves its VMs 2 s
    // after the prompt: <hyperlab-vm persist>) the host allows 60 s of silence (rpc.ts LONG_CALL_SILENCE_MS).
    const view = await waitForVm(page, "hyperlab-vm", "the dead worker to be shown", (v) => v.state === "error", 75_000);
    await screenshot(page, "error-worker-died");
    expect(view.errorCode).toBe("WORKER_DIED");
    expect(view.error).toMatch(/the VM's worker died unexpectedly \(it stopped answering/);
    expect(view.error).toMatch(/Close other tabs or lower the element's memory attribute, then restart/);
    await page.locator("hyperlab-vm .error button").click();
    await waitForPrompt(page, "hyperlab-vm");
  }, 150_000);

  it("shows the budget refusing another VM, in the Hypervisor layer and in an element", async () => {
    const { page, site } = lab;
    // A course page that gives its VMs 200 MiB in all: room for one VM of 128 MiB.
    await page.route(`${site.url}budget.html`, (route) =>
      route.fulfill({
        contentType: "text/html",
        body: `<!doctype html><meta name="hyperlab-memory-budget" content="200"><script type="module" src="./hyperlab-vm.js"></script>
          <main><hyperlab-vm id="a" show-stack style="height: 560px"></hyperlab-vm></main>`,
      }),
    );
    await page.goto(`${site.url}budget.html`);
    await waitForPrompt(page, "#a");
    await page.locator("#a .stack button[data-action=create-vm]").click();
    const status = page.locator("#a .stack [data-layer=hypervisor] .status.error").first();
    await expect.poll(() => status.textContent(), { timeout: 30_000, message: "the refusal in the Hypervisor layer" }).toMatch(/RESOURCE_EXHAUSTED/);
    expect(await status.textContent()).toMatch(/asks for 128 MiB of memory but only 72 MiB of the host budget \(200 MiB\) is free/);
    await status.scrollIntoViewIfNeeded();
    await screenshot(page, "error-budget-layer");
    await page.evaluate(() => document.querySelector("main")!.insertAdjacentHTML("beforeend", '<hyperlab-vm id="b" style="height: 200px"></hyperlab-vm>'));
    const view = await waitForVm(page, "#b", "the second element's refusal", (v) => v.state === "error", 30_000);
    await page.locator("#b").scrollIntoViewIfNeeded();
    await screenshot(page, "error-budget-element");
    expect(view.errorCode).toBe("RESOURCE_EXHAUSTED");
    expect(view.error).toMatch(/only 72 MiB of the host budget \(200 MiB\) is free/);
    expect(view.error).toMatch(/Remove a <hyperlab-vm> or lower their memory attributes/);
  });
});
