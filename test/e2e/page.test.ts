// The hyperlab page in a real browser: it loads, shows its progress, boots the
// real guest in a worker and gives a shell that answers in the terminal.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KERNEL_RELEASE, type Lab, openLab, run, screenshot, vmView, waitForPrompt } from "./browser.ts";

const VM = "hyperlab-vm";

describe("the hyperlab page", () => {
  let lab: Lab;
  const phases = new Set<string>();

  beforeAll(async () => {
    lab = await openLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("loads, shows download progress in bytes, and a shell prompt appears with the measured time", async () => {
    const { page, site } = lab;
    await page.exposeFunction("hlPhase", (phase: string) => void phases.add(phase));
    await page.addInitScript(() => {
      // Records every phase and byte count the progress bar shows, as the element draws it.
      document.addEventListener("hyperlab-progress", (e) => {
        const d = (e as CustomEvent<{ phase: string; label: string }>).detail;
        (window as unknown as { hlPhase(p: string): void }).hlPhase(`${d.phase}|${d.label}`);
      });
    });
    const requested: string[] = [];
    page.on("request", (r) => requested.push(new URL(r.url()).pathname));
    await page.goto(site.url);
    const bar = page.locator(`${VM} .progress .label`);
    // The label is drawn once the page has looked for a saved machine (none in a fresh browser) and starts its own.
    await expect.poll(() => bar.textContent(), { timeout: 10_000 }).toMatch(/MB|Downloading|Compiling|Booting/);
    await screenshot(page, "page-progress");
    await waitForPrompt(page, VM);
    await screenshot(page, "page-prompt");
    const view = await vmView(page, VM);
    expect(view.text).toMatch(/root@hyperlab:~# /);
    const ttp = await page.locator(`${VM} header .ttp`).textContent();
    expect(ttp).toMatch(/prompt \d+\.\d\d s after opening the page/);
    const promptMs = Number(await page.locator(VM).getAttribute("data-prompt-ms"));
    expect(promptMs).toBeGreaterThan(0);
    // The guest's files came from this server: at least the uncompressed sizes of what a boot needs (or their compressed copies).
    expect(site.bytesSent).toBeGreaterThan(5_000_000);
    // The guest profiles' snapshots are the site's too, but only an element that names a profile downloads one.
    expect(requested.filter((p) => /\.hlsnap$/.test(p))).toEqual([expect.stringMatching(/\/boot-128m[-.][^/]*$/)]);
  });

  it("showed the download in bytes while it ran", () => {
    const seen = [...phases].join("\n");
    expect(seen).toMatch(/download\|Downloading the guest · \d+\.\d \/ \d+\.\d MB/);
  });

  it("runs the emulator in a module worker, not on the page's thread", () => {
    const workers = lab.page.workers().map((w) => w.url());
    expect(workers.some((u) => /vm-worker-[\w-]+\.js$/.test(u))).toBe(true);
  });

  it("shows the kernel release when `uname -r` is typed in the terminal", async () => {
    const out = await run(lab.page, VM, "uname -r", new RegExp(`\\n${KERNEL_RELEASE.replace(/\./g, "\\.")}\\s*\\n`));
    expect(out).toContain(KERNEL_RELEASE);
    await screenshot(lab.page, "page-uname");
  });

  it("shows the live stack read from the guest: kernel release, namespaces, cgroups, runtimes, the VM's figures", async () => {
    const { page } = lab;
    const layer = (name: string) => page.locator(`${VM} .stack [data-layer=${name}]`);
    await expect.poll(async () => (await layer("kernel").textContent()) ?? "", { timeout: 30_000, message: "the kernel layer" }).toContain(`Linux ${KERNEL_RELEASE}`);
    const kernel = (await layer("kernel").textContent()) ?? "";
    expect(kernel).toMatch(/namespaces of PID 1.*pid \d{6,}/s);
    expect(kernel).toMatch(/cgroup v2 controllers.*memory/s);
    expect(await layer("runtime").textContent()).toMatch(/crun version \d/);
    expect(await layer("hypervisor").textContent()).toMatch(/page-vm-1 \(this\)running128 MiB, CPU share 1, from snapshot/);
    await expect.poll(async () => (await layer("hardware").textContent()) ?? "", { timeout: 10_000 }).toMatch(/\d[\d.]* [kM]? ?instructions\/s/);
    await screenshot(page, "page-stack");
  });

  it("tells the guest the terminal's size, and again when the page is resized", async () => {
    const { page } = lab;
    const size = async () =>
      page.evaluate(() => (document.querySelector("hyperlab-vm") as HTMLElement & { terminalSize(): { rows: number } }).terminalSize().rows);
    const rows = await size();
    await run(page, VM, "stty size", new RegExp(`\\n${rows} \\d+\\s*\\n`));
    await page.setViewportSize({ width: 900, height: 520 });
    await expect.poll(size, { timeout: 10_000, message: "the terminal to get fewer rows after the page shrank" }).toBeLessThan(rows);
    const smaller = await size();
    // The new size reaches the guest through the agent a moment after the resize.
    await expect
      .poll(async () => run(page, VM, "stty size", /\n\d+ \d+\s*\n/), { timeout: 15_000, message: `the guest's tty to report ${smaller} rows` })
      .toMatch(new RegExp(`\\n${smaller} \\d+\\s*\\n`));
    await screenshot(page, "page-resized");
  });
});
