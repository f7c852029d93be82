// Files into a page's VM: a page has no host directories, so a file dropped
// onto the terminal is copied into the guest (root's home, or a volume a
// container mounts with -v NAME:/path), and a bind mount is refused with why.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, run, screenshot, waitForPrompt } from "./browser.ts";

const VM = "hyperlab-vm";

/** Drops files (name → text) onto the element's console terminal as a browser drag would deliver them; resolves with the drop's report. */
async function drop(lab: Lab, files: Record<string, string>): Promise<{ dir: string; files: number; bytes: number }> {
  return lab.page.evaluate(
    async ({ vm, files }) => {
      const el = document.querySelector(vm)!;
      const pane = el.shadowRoot!.querySelector<HTMLElement>('.pane[data-terminal="console"]')!;
      const dt = new DataTransfer();
      for (const [name, text] of Object.entries(files)) dt.items.add(new File([text], name, { type: "text/plain" }));
      const done = new Promise<{ dir: string; files: number; bytes: number }>((resolve) => el.addEventListener("files-dropped", (e) => resolve((e as CustomEvent).detail), { once: true }));
      pane.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
      pane.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
      return done;
    },
    { vm: VM, files },
  );
}

describe("files into a page's VM", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await openLab();
    await lab.page.goto(lab.site.url);
    await waitForPrompt(lab.page, VM);
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("copies a file dropped onto the terminal into root's home and says where", async () => {
    const report = await drop(lab, { "notes.txt": "dropped from the browser\n" });
    expect(report).toEqual({ dir: "/root", files: 1, bytes: 25 });
    const out = await run(lab.page, VM, "cat /root/notes.txt", /dropped from the browser/);
    expect(out).toContain("dropped from the browser");
    const text = await lab.page.evaluate((vm) => (document.querySelector(vm) as unknown as { terminalText(): string }).terminalText(), VM);
    expect(text).toContain("[copied 1 file (0.0 MB) into /root]");
  });

  it("copies into a named volume (made on the drop) when the element names one", async () => {
    await lab.page.evaluate((vm) => document.querySelector(vm)!.setAttribute("drop-volume", "site"), VM);
    const report = await drop(lab, { "index.html": "<h1>mine</h1>\n", "style.css": "h1 { color: red }\n" });
    expect(report).toEqual({ dir: "/var/lib/hyperlab/volumes/site/_data", files: 2, bytes: 32 });
    await run(lab.page, VM, "ls /var/lib/hyperlab/volumes/site/_data", /index\.html\s+style\.css/);
    // The header's list offers the volume for the next drop.
    await lab.page.locator(`${VM} .drop-into select`).focus();
    await expect.poll(() => lab.page.locator(`${VM} .drop-into option`).allTextContents()).toContain("volume site");
    await screenshot(lab.page, "volumes-drop");
  });

  it("refuses a bind mount in the page, saying why and what to use instead", async () => {
    const message = await lab.page.evaluate(async (vm) => {
      const el = document.querySelector(vm) as unknown as { pageVm: { hypervisor(): { get(n: string): { share(s: unknown): Promise<string> } }; name: string } };
      const v = el.pageVm.hypervisor().get(el.pageVm.name);
      return v.share({ name: "x", hostPath: "/home", readOnly: false }).then(
        () => "shared",
        (e: Error) => e.message,
      );
    }, VM);
    expect(message).toContain("a VM in a browser has no host directories to share: use a volume, or drop files onto the terminal");
  });
});
