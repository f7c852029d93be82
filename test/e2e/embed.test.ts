// The example course page: two <hyperlab-vm> elements from one script tag are
// two machines in two workers, and neither can see the other's files.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KERNEL_RELEASE, type Lab, openLab, run, screenshot, waitForPrompt } from "./browser.ts";

describe("two embedded VMs on the example course page", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1280, height: 1400 } });
    await lab.page.goto(`${lab.site.url}examples/course.html`);
  });
  afterAll(async () => {
    await lab?.close();
  });

  it("loads the element with one script tag and brings both VMs to a prompt", async () => {
    const scripts = await lab.page.locator("script").evaluateAll((s) => s.map((e) => e.getAttribute("src")));
    expect(scripts).toEqual(["../hyperlab-vm.js"]);
    await Promise.all([waitForPrompt(lab.page, "#vm-a"), waitForPrompt(lab.page, "#vm-b")]);
    await screenshot(lab.page, "course-prompts");
  });

  it("runs each VM in its own worker", () => {
    const vmWorkers = lab.page.workers().filter((w) => /vm-worker-[\w-]+\.js$/.test(w.url()));
    expect(vmWorkers.length).toBeGreaterThanOrEqual(2);
  });

  it("keeps a file written in one VM out of the other", async () => {
    const { page } = lab;
    await run(page, "#vm-a", "echo hello from A > /root/note.txt; cat /root/note.txt", /\nhello from A\s*\n/);
    await run(page, "#vm-b", "cat /root/note.txt", /No such file or directory/);
    // Both are the same kind of machine: each booted its own kernel.
    await run(page, "#vm-b", "uname -r", new RegExp(`\\n${KERNEL_RELEASE.replace(/\./g, "\\.")}\\s*\\n`));
    await screenshot(page, "course-isolation");
  });
});
