// Published ports from the page: a busybox httpd container run with -p from
// the stack view's form becomes a link; clicking it opens the container's
// page in a new tab, relayed by the site's service worker through the VM's
// agent. Relative links inside the app, absolute ones and the end of the
// container work as a learner expects.
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, run, screenshot, waitForPrompt } from "./browser.ts";

const VM = "hyperlab-vm";

/** An app of two pages: the index links to about.html relatively and to /style.css absolutely. */
const APP =
  `sh -c "mkdir -p /www && echo '<h1>hello from a container</h1><a id=rel href=about.html>about</a> <a id=abs href=/style.css>style</a>' > /www/index.html` +
  ` && echo 'about this app' > /www/about.html && echo 'h1 { color: teal }' > /www/style.css && exec httpd -f -p 80 -h /www"`;

describe("published ports in the page", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1400, height: 900 } });
    await lab.page.goto(lab.site.url);
    await waitForPrompt(lab.page, VM);
  });
  afterAll(async () => {
    await lab?.close();
  });

  const containers = () => lab.page.locator(`${VM} .stack [data-layer=containers]`);

  it("runs busybox httpd with -p 8080:80 from the form; its link opens the container's page in a new tab", async () => {
    const form = lab.page.locator(`${VM} form.run-container`);
    await form.locator("select").first().selectOption("busybox");
    await form.locator("label", { hasText: "command" }).locator("input").fill(APP);
    await form.locator("label", { hasText: "publish" }).locator("input").fill("8080:80");
    await form.locator("button[data-action=run]").click();
    const link = containers().locator(".item.container[data-status=running] a[data-port='8080']");
    await expect.poll(() => link.count(), { timeout: 60_000, message: "the published port's link in the Containers layer" }).toBe(1);
    expect(await link.textContent()).toBe("port 8080 → 80");
    const href = (await link.getAttribute("href"))!;
    expect(href).toMatch(/\/_ports\/page-vm-\d+\/8080\/$/);
    await screenshot(lab.page, "ports-link");

    // httpd listens a moment after the container starts: the first click may find nothing there yet.
    let tab: Page | undefined;
    for (let i = 0; i < 10; i++) {
      const opened = lab.context.waitForEvent("page");
      await link.click();
      tab = await opened;
      await tab.waitForLoadState("load");
      if ((await tab.locator("h1").textContent().catch(() => "")) === "hello from a container") break;
      await tab.close();
      tab = undefined;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(tab, "the container's page in the new tab").toBeDefined();
    expect(tab!.url()).toBe(href);
    await screenshot(tab!, "ports-container-page");

    // A relative link stays inside the app; an absolute one is sent back under the app's prefix.
    await tab!.locator("#rel").click();
    await expect.poll(async () => (await tab!.textContent("body"))?.trim(), { timeout: 20_000 }).toBe("about this app");
    expect(tab!.url()).toBe(`${href}about.html`);
    await tab!.goBack();
    await tab!.locator("#abs").click();
    await expect.poll(async () => (await tab!.textContent("body"))?.trim(), { timeout: 20_000 }).toBe("h1 { color: teal }");
    expect(tab!.url()).toBe(`${href}style.css`);

    // Many requests in a row (the relay's connections are kept or opened anew as the server says).
    const bodies = await tab!.evaluate(async (base) => Promise.all(Array.from({ length: 12 }, (_, i) => fetch(`${base}about.html?${i}`).then((r) => r.text()))), href);
    expect(new Set(bodies)).toEqual(new Set(["about this app\n"]));
    await tab!.close();
  });

  it("gives `docker run -p` typed in the page's terminal a link too (the guest's docker client, the page's Docker API)", async () => {
    // The guest's docker client is fetched on its first use and takes seconds of emulated CPU per command.
    await run(lab.page, VM, "docker run -d --name web2 -p 9090:80 busybox httpd -f -p 80 -h /etc", /\r?\n[0-9a-f]{64}\r?\n/, 300_000);
    const link = containers().locator(".item.container[data-status=running] a[data-port='9090']");
    await expect.poll(() => link.count(), { timeout: 30_000, message: "the link of docker run -p's port" }).toBe(1);
    const href = (await link.getAttribute("href"))!;
    const tab = await lab.context.newPage();
    await expect
      .poll(async () => (await tab.goto(`${href}passwd`))?.status(), { timeout: 30_000, message: "the container's /etc/passwd through the link" })
      .toBe(200);
    expect(await tab.textContent("body")).toMatch(/^root:x:0:0:/);
    await tab.close();
    await run(lab.page, VM, "docker rm -f web2", /web2/, 120_000);
  }, 420_000);

  it("says so in the tab when the container is gone", async () => {
    const item = containers().locator(".item.container[data-status=running]", { has: lab.page.locator("a[data-port='8080']") });
    const href = (await item.locator("a[data-port='8080']").getAttribute("href"))!;
    await item.locator("button[data-action=remove]").click();
    await expect.poll(() => containers().locator(".item.container").count(), { timeout: 30_000 }).toBe(0);
    const tab = await lab.context.newPage();
    const response = await tab.goto(href);
    expect(response?.status()).toBe(502);
    expect(await tab.locator("h1").textContent()).toMatch(/^Nothing publishes port 8080 of VM page-vm-\d+$/);
    await tab.close();
  });
});
