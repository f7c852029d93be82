// Faults on the page are shown in place, with what happened and what to do.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, screenshot, waitForVm } from "./browser.ts";

describe("errors on the page", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1100, height: 600 } });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("names the guest file that failed to load and says what to do", async () => {
    const { page, site } = lab;
    await page.route(/\/assets\/vmlinux-[\w-]+\.bin$/, (route) => route.fulfill({ status: 404, body: "gone" }));
    await page.goto(site.url);
    const view = await waitForVm(page, "hyperlab-vm", "the error for the missing kernel", (v) => v.state === "error", 30_000);
    await screenshot(page, "error-asset");
    expect(view.errorCode).toBe("IMAGE_MISSING");
    expect(view.error).toMatch(/guest image file vmlinux\.bin could not be read/);
    expect(view.error).toMatch(/HTTP 404/);
    expect(view.error).toMatch(/Reload the page; if it happens again, the site is missing this file/);
    await page.unroute(/\/assets\/vmlinux-[\w-]+\.bin$/);
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
});
