// `docker` inside the page's guest: the guest's own docker client (Debian's,
// fetched from the site on its first use, not before) → /var/run/docker.sock
// → the agent → the Docker API served by this tab → the page's container
// engine → crun in the same guest. Typed in the page's terminal as a learner
// would; the stack view's Docker API layer lists the calls as they come.
//
// Slow by nature: the client is a 43.6 MB Go program, and each docker command
// spends several seconds of emulated CPU before its first API call (about 5 s
// measured in Node; more on a busy machine), so the timeouts are generous.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, run, screenshot, waitForPrompt } from "./browser.ts";

const VM = "hyperlab-vm";
/** One docker command in the guest, first use excepted. */
const COMMAND_MS = 120_000;
/** A test of a few docker commands. */
const TEST_MS = 420_000;

describe("docker inside the page's guest", () => {
  let lab: Lab;
  const requested: string[] = [];

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1600, height: 900 } });
    lab.page.on("request", (r) => void requested.push(new URL(r.url()).pathname));
    await lab.page.goto(lab.site.url);
    await waitForPrompt(lab.page, VM);
  });
  afterAll(async () => {
    await lab?.close();
  });

  /** Types a command in the page's terminal and waits for `expected` and the next prompt; says how long it took. */
  const docker = async (command: string, expected: RegExp, timeoutMs = COMMAND_MS): Promise<string> => {
    const t0 = Date.now();
    const out = await run(lab.page, VM, command, expected, timeoutMs);
    console.log(`'${command}' in the page's terminal: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return out;
  };
  const apiCalls = () => lab.page.locator(`${VM} .stack [data-layer=docker] table.api-calls tr[data-method]`);
  /** The calls the Docker API layer lists, as `METHOD path status`. */
  const listedCalls = async () =>
    (await apiCalls().evaluateAll((rows) => rows.map((r) => `${(r as HTMLElement).dataset.method} ${(r as HTMLElement).dataset.path} ${(r as HTMLElement).dataset.status}`))) as string[];

  it("downloads neither the docker client nor the Docker API's code before docker is used", async () => {
    expect(requested.some((p) => /\/docker-[\w-]+\.gzip$/.test(p))).toBe(false);
    expect(requested.some((p) => /\/llhttp-[\w-]+\.wasm$/.test(p))).toBe(false);
    expect(requested.some((p) => /\/routes-[\w-]+\.js$/.test(p))).toBe(false);
    const layer = lab.page.locator(`${VM} .stack [data-layer=docker]`);
    await expect.poll(async () => (await layer.textContent()) ?? "", { timeout: 20_000 }).toMatch(/clientnot used yet in this VM/);
  });

  it("runs `docker run --rm busybox echo hi` in the terminal; the bar shows the client's first download", async () => {
    // The progress bar's words as they change (the download from localhost is quick; writing 43.6 MB into the guest is not).
    await lab.page.evaluate((sel) => {
      const label = document.querySelector(sel)!.shadowRoot!.querySelector(".progress .label")!;
      const seen: string[] = ((window as unknown as { hlLabels: string[] }).hlLabels = []);
      new MutationObserver(() => seen.push(label.textContent ?? "")).observe(label, { childList: true, characterData: true, subtree: true });
    }, VM);
    const out = await docker("docker run --rm busybox echo hi", /\r?\nhi\r?\n/, 300_000);
    expect(out).not.toMatch(/Error|error/);
    const labels = await lab.page.evaluate(() => (window as unknown as { hlLabels: string[] }).hlLabels);
    expect(labels.join("\n")).toMatch(/Downloading the docker client \(first docker on this page\) · [\d.]+ \/ 14\.6 MB/);
    expect(labels.join("\n")).toMatch(/Writing the docker client into the VM/);
    await expect.poll(() => lab.page.locator(`${VM} .progress`).isHidden(), { message: "the bar hides once the client is there" }).toBe(true);
    // Fetched once, from this site.
    expect(requested.filter((p) => /\/docker-[\w-]+\.gzip$/.test(p))).toHaveLength(1);
    // The Docker API layer lists what `docker run` asked for: create, attach, wait, start, and the removal it waited for.
    const calls = await listedCalls();
    expect(calls).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^HEAD \/_ping 200$/),
        expect.stringMatching(/^POST \/v1\.41\/containers\/create 201$/),
        expect.stringMatching(/^POST \/v1\.41\/containers\/[0-9a-f]{64}\/attach 101$/),
        expect.stringMatching(/^POST \/v1\.41\/containers\/[0-9a-f]{64}\/wait 200$/),
        expect.stringMatching(/^POST \/v1\.41\/containers\/[0-9a-f]{64}\/start 204$/),
      ]),
    );
    const client = await lab.page.locator(`${VM} .stack [data-layer=docker] dd`).nth(1).textContent();
    expect(client).toMatch(/in the guest at \/usr\/libexec\/hyperlab\/docker/);
  }, TEST_MS);

  it("lists a running container with `docker ps` and its use with `docker stats --no-stream`", async () => {
    await docker("docker run -d --name web busybox sleep 600", /\r?\n[0-9a-f]{64}\r?\n/);
    const ps = await docker("docker ps", /CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES[\s\S]*busybox(:latest)?\s+"sleep 600"\s+.*Up .*\s+web/);
    expect(ps).toMatch(/\n[0-9a-f]{12}\s+busybox/);
    const stats = await docker("docker stats --no-stream", /CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS[\s\S]*\n[0-9a-f]{12}\s+web\s+[\d.]+%\s+[\d.]+[KMG]i?B \/ [\d.]+[KMG]i?B/);
    expect(stats).toMatch(/web\s+[\d.]+%.*\s1\s*\r?\n/);
    const calls = await listedCalls();
    expect(calls).toEqual(expect.arrayContaining([expect.stringMatching(/^GET \/v1\.41\/containers\/json 200$/), expect.stringMatching(/^GET \/v1\.41\/containers\/[0-9a-f]{12,64}\/stats 200$/)]));
    await screenshot(lab.page, "docker-in-guest");
  }, TEST_MS);

  it("answers an error as the docker client prints it, and the layer marks the failed call", async () => {
    const out = await docker("docker rm no-such-container; echo status=$?", /status=\d+/);
    expect(out).toMatch(/Error: No such container: no-such-container/);
    expect(out).toMatch(/status=1/);
    await expect.poll(async () => (await listedCalls()).some((c) => /^DELETE \/v1\.41\/containers\/no-such-container 404$/.test(c))).toBe(true);
    expect(await lab.page.locator(`${VM} .stack [data-layer=docker] tr.failed`).count()).toBeGreaterThan(0);
    await docker("docker rm -f web", /\r?\nweb\r?\n/);
  }, TEST_MS);
});
