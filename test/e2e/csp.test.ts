// The page under its Content-Security-Policy (src/web/csp.ts): the site
// server of `npm start` sends it, the built index.html and _headers carry it,
// the page boots its VM, runs a command, pulls an image, runs a container
// and registers the ports' service worker with no violation, the policy
// really refuses inline script and eval, and what a guest prints (on its
// console, as a cgroup's name in the stack view) is shown as text and never
// runs.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { CDPSession } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTENT_SECURITY_POLICY, headersFile, parseCsp } from "../../src/web/csp.ts";
import { type Lab, openLab, run, screenshot, vmView, waitForPrompt, waitForVm } from "./browser.ts";

const VM = "hyperlab-vm";
const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));

/** Markup a guest prints: each would set window.hlPwned if the page took it for HTML. */
const IMG = "<img src=x onerror=window.hlPwned=1>";
const SCRIPT = "<script>window.hlPwned=2</script>";

/** What the page saw of CSP: its `securitypolicyviolation` events (collected by an init script). */
async function pageViolations(lab: Lab): Promise<string[]> {
  return lab.page.evaluate(() => (window as unknown as { cspViolations?: string[] }).cspViolations ?? []);
}

describe("the page under its Content-Security-Policy", () => {
  let lab: Lab;
  let cdp: CDPSession;
  /** Console and log lines of the page and its workers that speak of the policy. */
  const logged: string[] = [];
  const aboutCsp = (text: string) => /Content[- ]Security[- ]Policy|Refused to (?:load|execute|evaluate|compile|apply|create|connect|frame)/i.test(text);

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1400, height: 900 } });
    // Every violation in the page (its shadow roots' too: the event is composed), recorded from before the page's first script.
    await lab.context.addInitScript(() => {
      const w = window as unknown as { cspViolations: string[] };
      w.cspViolations = [];
      document.addEventListener("securitypolicyviolation", (e) => w.cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`), true);
    });
    lab.context.on("console", (m) => aboutCsp(m.text()) && logged.push(`console ${m.type()}: ${m.text()}`));
    lab.page.on("worker", (w) => w.on("console", (m) => aboutCsp(m.text()) && logged.push(`worker ${w.url()}: ${m.text()}`)));
    // The browser's own log (where Chromium writes each refusal), which console events may not carry.
    cdp = await lab.context.newCDPSession(lab.page);
    cdp.on("Log.entryAdded", ({ entry }) => aboutCsp(entry.text) && logged.push(`log ${entry.source}/${entry.level}: ${entry.text}`));
    await cdp.send("Log.enable");
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("is sent by the site server of `npm start` on the page, its scripts and workers, and carried by the build for static hosts", async () => {
    const page = await fetch(lab.site.url);
    expect(page.status).toBe(200);
    const header = page.headers.get("content-security-policy");
    expect(header).toBe(CONTENT_SECURITY_POLICY);
    const policy = parseCsp(header!);
    expect(policy["script-src"]).toEqual(["'self'", "'wasm-unsafe-eval'"]);
    expect(policy["worker-src"]).toEqual(["'self'"]);
    expect(policy["connect-src"]).toEqual(["'self'"]);
    expect(policy["object-src"]).toEqual(["'none'"]);
    expect(policy["base-uri"]).toEqual(["'none'"]);
    expect(Object.values(policy).flat()).not.toContain("'unsafe-eval'");

    // The worker scripts get it too (a dedicated or service worker is held to its own response's policy).
    const html = await page.text();
    const workerName = /\bvm-worker-[\w-]+\.js/.exec(readFileSync(`${DIST}${/assets\/page-[\w-]+\.js/.exec(html)![0]}`, "utf8"))?.[0];
    const workerFile = workerName && `assets/${workerName}`;
    expect(workerFile, "the VM worker's file named in the page's script").toBeDefined();
    for (const path of [workerFile!, "ports-sw.js", "hyperlab-vm.js"]) {
      const r = await fetch(`${lab.site.url}${path}`);
      expect(r.status, path).toBe(200);
      expect(r.headers.get("content-security-policy"), path).toBe(CONTENT_SECURITY_POLICY);
    }

    // For hosts that send no header: the page's <meta>, before any script; and _headers for hosts that read one.
    const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html);
    expect(meta?.[1]?.replace(/&quot;/g, '"').replace(/&amp;/g, "&")).toBe(CONTENT_SECURITY_POLICY);
    expect(html.indexOf("Content-Security-Policy")).toBeLessThan(html.indexOf("<script"));
    expect(readFileSync(`${DIST}_headers`, "utf8")).toBe(headersFile());
  });

  it("boots the VM to a shell prompt and runs a command with no violation of the policy", async () => {
    await lab.page.goto(lab.site.url);
    await waitForPrompt(lab.page, VM);
    const out = await run(lab.page, VM, "uname -r && echo csp-ok", /csp-ok/);
    expect(out).toContain("csp-ok");
    // Every worker is a file of the site: the VM's, and v86's timer worker (which v86 alone would make from a Blob).
    const workers = lab.page.workers().map((w) => new URL(w.url()));
    expect(workers.filter((u) => u.protocol !== "http:" || u.origin !== new URL(lab.site.url).origin)).toEqual([]);
    expect(workers.some((u) => /\/assets\/v86-timer-worker-[\w-]+\.js$/.test(u.pathname)), "v86's timer worker, from the site").toBe(true);
    expect(await pageViolations(lab)).toEqual([]);
    expect(logged).toEqual([]);
  });

  it("refuses inline script and eval in the page, and reports each (the policy is real, and its violations are seen here)", async () => {
    const result = await lab.page.evaluate(async () => {
      const w = window as unknown as { inlineRan?: boolean; cspViolations: string[] };
      const script = document.createElement("script");
      script.textContent = "window.inlineRan = true";
      document.body.append(script);
      // A string for the page to compile later, in its own task (code DevTools evaluates is exempt from the policy).
      setTimeout("window.inlineRan = true", 0);
      const inAttribute = document.createElement("div");
      inAttribute.innerHTML = "<img src=x onerror=window.inlineRan=true>";
      document.body.append(inAttribute);
      await new Promise((r) => setTimeout(r, 500));
      script.remove();
      inAttribute.remove();
      return { ran: w.inlineRan === true, violations: w.cspViolations.splice(0) };
    });
    expect(result.ran).toBe(false);
    const seen = result.violations.join("\n");
    expect(seen).toMatch(/^script-src-elem blocked inline/m);
    expect(seen).toMatch(/^script-src blocked eval/m);
    expect(seen).toMatch(/^script-src-attr blocked inline/m);
    // The browser logs the three refusals too (they are this test's own, not the page's): all of them, then they are set aside.
    const kinds = [/inline script/, /string as JavaScript/, /inline event handler/];
    await expect.poll(() => kinds.every((k) => logged.some((l) => k.test(l))), { timeout: 5000, message: `the three refusals in the browser's log; it has ${JSON.stringify(logged)}` }).toBe(true);
    await lab.page.waitForTimeout(500);
    logged.splice(0);
  });

  it("shows markup a guest prints on its console as text, and runs none of it", async () => {
    const out = await run(lab.page, VM, `echo '${IMG}${SCRIPT}'`, /window\.hlPwned=2<\/script>\r?\n/);
    expect(out).toContain(`${IMG}${SCRIPT}`);
    const found = await lab.page.evaluate((sel) => {
      const root = document.querySelector(sel)!.shadowRoot!;
      return { pwned: (window as unknown as { hlPwned?: number }).hlPwned, imgs: root.querySelectorAll("img").length, scripts: root.querySelectorAll("script").length };
    }, VM);
    expect(found).toEqual({ pwned: undefined, imgs: 0, scripts: 0 });
    // The terminal draws it as text (xterm's rows), as the learner sees it.
    await expect.poll(() => lab.page.locator(`${VM} .pane[data-terminal=console] .xterm-rows`).textContent()).toContain("<img src=x onerror=window.hlPwned=1>");
  });

  it("shows a cgroup the guest names with markup in the stack view's Kernel layer as text, and runs none of it", async () => {
    await run(lab.page, VM, `mkdir '/sys/fs/cgroup/${IMG}' && echo made`, /made/);
    const kernel = lab.page.locator(`${VM} .stack [data-layer=kernel]`);
    await expect.poll(() => kernel.textContent(), { timeout: 20_000, message: "the cgroup's name in the Kernel layer" }).toContain(`/${IMG}`);
    expect(await kernel.locator("img").count()).toBe(0);
    expect(await lab.page.evaluate(() => (window as unknown as { hlPwned?: number }).hlPwned)).toBeUndefined();
    await screenshot(lab.page, "csp-guest-markup");
    await run(lab.page, VM, `rmdir '/sys/fs/cgroup/${IMG}' && echo gone`, /gone/);
  });

  it("pulls an image from the site's registry, runs a container with a published port and registers the ports' service worker, all within the policy", async () => {
    const form = lab.page.locator(`${VM} form.run-container`);
    await form.locator("select").first().selectOption("busybox");
    await form.locator("label", { hasText: "command" }).locator("input").fill(`sh -c "echo '${IMG}'; exec sleep 3600"`);
    await form.locator("label", { hasText: "publish" }).locator("input").fill("8080:80");
    await form.locator("button[data-action=run]").click();
    const link = lab.page.locator(`${VM} .stack [data-layer=containers] .item.container[data-status=running] a[data-port='8080']`);
    await expect.poll(() => link.count(), { timeout: 90_000, message: "the running container's published port link" }).toBe(1);
    const worker = await lab.page.evaluate(async () => {
      const reg = await Promise.race([navigator.serviceWorker.ready, new Promise<undefined>((r) => setTimeout(r, 20_000))]);
      return reg?.active?.scriptURL;
    });
    expect(worker, "the site's service worker, registered under the policy").toMatch(/\/ports-sw\.js$/);
    expect(await lab.page.evaluate(() => (window as unknown as { hlPwned?: number }).hlPwned)).toBeUndefined();
    // The VM still answers: nothing the page needed was refused on the way.
    const view = await waitForVm(lab.page, VM, "the VM still running", (v) => v.state === "ready", 5000);
    expect(view.error).toBe("");
  });

  it("runs a lab page whose lab file holds markup and a javascript: link: shown as text, nothing run, nothing refused", async () => {
    const labPage = await lab.context.newPage();
    const labCdp = await lab.context.newCDPSession(labPage);
    labCdp.on("Log.entryAdded", ({ entry }) => aboutCsp(entry.text) && logged.push(`lab log ${entry.source}/${entry.level}: ${entry.text}`));
    await labCdp.send("Log.enable");
    const hostile = readFileSync(fileURLToPath(new URL("../../examples/labs/cgroups.md", import.meta.url)), "utf8").replace(
      "Namespaces decide",
      `${SCRIPT} ${IMG} [a link](javascript:window.hlPwned=3) <a href="javascript:window.hlPwned=4">raw</a> Namespaces decide`,
    );
    await labPage.route("**/examples/labs/cgroups.md", (route) => route.fulfill({ status: 200, contentType: "text/markdown", body: hostile }));
    await labPage.goto(`${lab.site.url}examples/lab.html`);
    await waitForPrompt(labPage, "hyperlab-lab > hyperlab-vm");
    const intro = labPage.locator("hyperlab-lab .intro");
    await expect.poll(() => intro.textContent()).toContain(`${SCRIPT} ${IMG}`);
    expect(await intro.locator("script, img, a[href^='javascript' i]").count()).toBe(0);
    expect(await labPage.evaluate(() => (window as unknown as { hlPwned?: number }).hlPwned)).toBeUndefined();
    expect(await pageViolations({ ...lab, page: labPage })).toEqual([]);
    await labPage.close();
  });

  it("saw no violation of the policy in the page or its workers from start to end", async () => {
    // A last look, after the stack view has refreshed once more.
    await lab.page.waitForTimeout(3500);
    expect((await vmView(lab.page, VM)).state).toBe("ready");
    expect(await pageViolations(lab)).toEqual([]);
    expect(logged).toEqual([]);
  });
});
