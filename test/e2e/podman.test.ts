// A guest profile on a page: the example course page's <hyperlab-vm
// profile="podman"> restores the podman profile's own boot snapshot (the page
// downloads it because the element names it, and not the default guest's),
// runs Podman from the terminal, and the stack view's Runtime layer shows
// what Podman keeps running: a conmon per container, no daemon.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, run, screenshot, waitForPrompt } from "./browser.ts";

const VM = "hyperlab-vm#podman";

describe("the podman profile on a page", () => {
  let lab: Lab;
  const requested: string[] = [];

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1400, height: 1000 } });
    lab.page.on("request", (r) => requested.push(new URL(r.url()).pathname));
    await lab.page.goto(`${lab.site.url}examples/podman.html`);
  });
  afterAll(async () => {
    await lab?.close();
  });

  const layer = (name: string) => lab.page.locator(`${VM} .stack [data-layer=${name}]`);

  it("restores the podman profile's boot snapshot, downloaded because the element names the profile", async () => {
    await waitForPrompt(lab.page, VM, 180_000);
    const snapshots = requested.filter((p) => /boot-.*\.hlsnap/.test(p));
    expect(snapshots).toEqual([expect.stringMatching(/\/boot-podman-256m[-.][^/]*$/)]);
    await run(lab.page, VM, "podman --version; free -m | awk '/Mem:/ { print \"memory\", $2 }'", /podman version 4\.3\.1\s+memory 2\d\d\s/);
    // The layers of a cold boot were not read: the snapshot holds them.
    expect(requested.filter((p) => /profile-podman|vmlinux|\.cpio/.test(p))).toEqual([]);
  });

  it("runs a container with podman in the terminal, and the Runtime layer shows its conmon and no daemon", async () => {
    const out = await run(lab.page, VM, "podman run -d --name web busybox sleep 600", /\n[0-9a-f]{64}\s/, 90_000);
    const id = /\n([0-9a-f]{64})\s/.exec(out)![1]!;
    const row = layer("runtime").locator("table.podman tr[data-container=web]");
    await expect.poll(() => row.count(), { timeout: 30_000, message: "web in the Runtime layer's Podman section" }).toBe(1);
    const conmon = await row.getAttribute("data-conmon");
    // Drawn every few seconds from ps: the container's process shows once the runtime has made it.
    await expect
      .poll(async () => (await row.textContent()) ?? "", { timeout: 30_000, message: "web's conmon and its sleep in the Podman section" })
      .toMatch(new RegExp(`web \\(${id.slice(0, 12)}\\)PID ${conmon}PID \\d+: sleep 600`));
    expect(await layer("runtime").locator(".podman-daemon").textContent()).toMatch(/^daemon: none \(no podman process now\) · conmon: 1, one per container/);
    // The same process, as the guest's own ps shows it: conmon, the container's sleep its child.
    await run(lab.page, VM, "ps -o pid,ppid,comm | grep -E 'conmon|sleep'", new RegExp(`\\s${conmon}\\s+1\\s+conmon[\\s\\S]*\\s${conmon}\\s+sleep`));
    expect(await layer("runtime").locator("tr[data-system=Podman]").textContent()).toContain("runs in this VM");
    await layer("runtime").locator("table.podman").scrollIntoViewIfNeeded();
    await screenshot(lab.page, "podman-runtime");

    await run(lab.page, VM, "podman rm -f -t 0 web", /\nweb\s/, 60_000);
    await expect.poll(() => row.count(), { timeout: 30_000, message: "web gone from the Podman section" }).toBe(0);
  });
});
