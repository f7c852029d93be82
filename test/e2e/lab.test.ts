// <hyperlab-lab> on the example lab page: the steps beside the terminal,
// checks ticked after the learner's commands, hints on request, lab text that
// cannot run script, the work brought back after a reload (progress and the
// VM's files), and "Download my work" saving a state that the headless
// grader (`hyperlab lab run --snapshot`) grades.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSnapshotHeader } from "../../src/hypervisor/snapshot.ts";
import { type Lab, openLab, run, screenshot, waitForPrompt } from "./browser.ts";

const LAB_FILE = fileURLToPath(new URL("../../examples/labs/cgroups.md", import.meta.url));
const bin = fileURLToPath(new URL("../../bin/hyperlab.js", import.meta.url));
const VM = "hyperlab-lab > hyperlab-vm";
const work = mkdtempSync(join(tmpdir(), "hyperlab-lab-e2e-"));

/** The cgroups lab with hostile text in its intro and a hint: none of it may run or become markup. */
const HOSTILE = readFileSync(LAB_FILE, "utf8")
  .replace("Namespaces decide", '<script>window.labPwned = "script"</script> <img src=x onerror="window.labPwned = \'img\'"> [a link](javascript:window.labPwned=1) Namespaces decide')
  .replace("A group is made with `mkdir`", "<b onclick=\"window.labPwned='b'\">bold?</b> A group is made with `mkdir`");

/** What the lab element shows: its state, the steps passed, and each step's check marks. */
async function labView(page: Page) {
  return page.evaluate(() => {
    const el = document.querySelector("hyperlab-lab") as HTMLElement;
    const steps = [...(el.shadowRoot?.querySelectorAll("li.step") ?? [])].map((li) => ({
      passed: (li as HTMLElement).dataset.passed === "true",
      checks: [...li.querySelectorAll("ul.checks li")].map((c) => (c as HTMLElement).dataset.status),
    }));
    return { state: el.dataset.state, passed: el.dataset.passed ?? "", rounds: Number(el.dataset.rounds ?? 0), savedRound: Number(el.dataset.savedRound ?? -1), error: el.shadowRoot?.querySelector(".error")?.textContent ?? "", steps };
  });
}

/** Waits until the lab view satisfies `test`, naming `what` on timeout. */
async function waitForLab(page: Page, what: string, test: (v: Awaited<ReturnType<typeof labView>>) => boolean, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  let view = await labView(page);
  while (!test(view)) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; the lab shows ${JSON.stringify(view)}`);
    await page.waitForTimeout(200);
    view = await labView(page);
  }
  return view;
}

describe("<hyperlab-lab> on the example lab page", () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1400, height: 1000 } });
    await lab.page.route("**/examples/labs/cgroups.md", (route) => route.fulfill({ status: 200, contentType: "text/markdown", body: HOSTILE }));
    await lab.page.goto(`${lab.site.url}examples/lab.html`);
  });
  afterAll(async () => {
    await lab?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("shows the steps beside a terminal, its checks not passed on the untouched machine", async () => {
    await waitForPrompt(lab.page, VM);
    const view = await waitForLab(lab.page, "the first check round", (v) => v.state === "ready" && v.rounds >= 1);
    expect(view.steps).toHaveLength(4);
    expect(view.steps.every((s) => !s.passed && s.checks.every((c) => c === "fail"))).toBe(true);
    const titles = await lab.page.locator("hyperlab-lab li.step h3").allTextContents();
    expect(titles).toEqual(["Step 1: Make a group", "Step 2: A memory limit and the OOM killer", "Step 3: Throttle the CPU", "Step 4: Contain a fork bomb"]);
    await screenshot(lab.page, "lab-start");
  });

  it("renders the lab's text without running its HTML or script", async () => {
    const intro = lab.page.locator("hyperlab-lab .intro");
    await expect.poll(() => intro.textContent()).toContain('<script>window.labPwned = "script"</script>');
    expect(await lab.page.locator("hyperlab-lab .intro script, hyperlab-lab .intro img, hyperlab-lab .intro a[href^=javascript]").count()).toBe(0);
    await lab.page.locator('hyperlab-lab li.step[data-step="1"] button.hint').click();
    const hint = lab.page.locator('hyperlab-lab li.step[data-step="1"] .hints .hint');
    await expect.poll(() => hint.textContent()).toContain("<b onclick=");
    expect(await lab.page.locator("hyperlab-lab .hints b").count()).toBe(0);
    await lab.page.locator('hyperlab-lab li.step[data-step="1"] .hints .hint b, hyperlab-lab li.step[data-step="1"] .hints .hint').first().click();
    expect(await lab.page.evaluate(() => (window as unknown as { labPwned?: unknown }).labPwned)).toBeUndefined();
    expect(await lab.page.locator('hyperlab-lab li.step[data-step="1"] button.hint').isHidden()).toBe(true);
  });

  it("ticks a step's checks after the command that does it", async () => {
    await run(lab.page, VM, "mkdir /sys/fs/cgroup/lab && echo made", /made/);
    const view = await waitForLab(lab.page, "step 1 to pass", (v) => v.passed === "1");
    expect(view.steps[0]).toEqual({ passed: true, checks: ["pass"] });
    expect(view.steps[1]!.passed).toBe(false);
    expect(await lab.page.locator("hyperlab-lab .count").textContent()).toBe("1 of 4 steps done");
    await run(lab.page, VM, "echo 16M > /sys/fs/cgroup/lab/memory.max; cat /sys/fs/cgroup/lab/memory.max", /16777216/);
    await waitForLab(lab.page, "step 2's first check to pass", (v) => v.steps[1]!.checks[0] === "pass" && v.steps[1]!.checks[1] === "fail");
    await screenshot(lab.page, "lab-step-1-done");
  });

  it("brings back the progress and the machine after a reload", async () => {
    await waitForLab(lab.page, "the state after the last check round to be kept in the browser", (v) => !v.steps.length || v.savedRound === v.rounds, 30_000);
    await lab.page.reload();
    await waitForLab(lab.page, "the lab to be back, step 1 passed", (v) => v.state === "ready" && v.passed === "1");
    await waitForPrompt(lab.page, VM);
    await run(lab.page, VM, "cat /sys/fs/cgroup/lab/memory.max", /16777216/);
    await screenshot(lab.page, "lab-after-reload");
  });

  it("downloads the learner's work as a state the headless grader grades", async () => {
    const [download] = await Promise.all([lab.page.waitForEvent("download"), lab.page.locator("hyperlab-lab button.download").click()]);
    expect(download.suggestedFilename()).toBe("cgroup-v2-limits.snap");
    const file = join(work, "work.snap");
    await download.saveAs(file);
    const header = readSnapshotHeader(new Uint8Array(readFileSync(file)));
    expect(header.records?.lab).toMatchObject({ id: "cgroup-v2-limits", passed: [1] });
    expect(header.delta).toBeUndefined();
    const graded = spawnSync(process.execPath, [bin, "lab", "run", "--snapshot", file, "--reporter", "json", LAB_FILE], { encoding: "utf8" });
    expect(graded.status, graded.stderr).toBe(1);
    const steps = (JSON.parse(graded.stdout) as { units: Array<{ steps: Array<{ passed: boolean; checks: Array<{ passed: boolean }> }> }> }).units[0]!.steps;
    expect(steps.map((s) => s.checks.map((c) => c.passed))).toEqual([[true], [true, false], [false, false], [false, false, false]]);
  }, 180_000);
});
