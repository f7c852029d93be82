// Images on the page come from the site's registry: the first download holds
// no image, the first container of an image pulls it from <site>/v2/ (the
// browser's own requests show it), the Containers layer shows the pull layer
// by layer, a page opened again pulls from the browser's cache, and a
// Dockerfile typed in the guest's shell builds (its FROM pulled the same way,
// a .dockerignore applied) and runs. The docker client takes many seconds of emulated CPU per command:
// the timeouts are generous.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, run, screenshot, typeLine, waitForPrompt } from "./browser.ts";

const VM = "hyperlab-vm";
/** What the site's registry serves (manifests, blobs, catalog), and the OCI layout the site shipped before it. */
const IMAGE_FILE = /\/v2\/|\/blobs\/sha256|\/assets\/images\//;

describe("images on the page, from the site's registry", () => {
  let lab: Lab;
  /** every URL the browser asked for (page and workers), in order */
  const requests: string[] = [];

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1400, height: 1000 } });
    lab.context.on("request", (r) => void requests.push(r.url()));
  });
  afterAll(async () => {
    await lab?.close();
  });

  const layer = (name: string) => lab.page.locator(`${VM} .stack [data-layer=${name}]`);
  const pullOf = (image: string) => layer("containers").locator(`.item.image-pull[data-image="${image}"]`);

  /** Runs a container of `image` from the stack view's form and waits until it runs. */
  async function runFromForm(image: string): Promise<void> {
    const running = layer("containers").locator(".item.container[data-status=running]");
    const before = await running.count();
    const form = lab.page.locator(`${VM} form.run-container`);
    await form.locator("select").first().selectOption(image);
    await form.locator("label", { hasText: "command" }).locator("input").fill("sleep 3600");
    await form.locator("button[data-action=run]").click();
    await expect.poll(() => running.count(), { timeout: 120_000, message: `a running ${image} container in the Containers layer` }).toBe(before + 1);
  }

  it("downloads no image before the prompt, nor while the page sits at it", async () => {
    await lab.page.goto(lab.site.url);
    await waitForPrompt(lab.page, VM);
    await lab.page.waitForTimeout(3000);
    // The watch sees the first download (the boot snapshot is in it)...
    expect(requests.some((u) => /\/assets\/boot-\d+m-[\w-]+\.hlsnap$/.test(u))).toBe(true);
    // ...and nothing of an image.
    expect(requests.filter((u) => IMAGE_FILE.test(u))).toEqual([]);
    await expect.poll(async () => (await layer("containers").locator(".images").textContent()) ?? "", { timeout: 10_000 }).toContain("No images in the page yet");
  }, 180_000);

  it("pulls lua:5.4 from the site's /v2/ when a container first uses it, and the Containers layer shows the pull", async () => {
    const from = requests.length;
    await runFromForm("lua:5.4");
    const pulled = requests.slice(from).map((u) => new URL(u).pathname);
    expect(pulled).toContain("/v2/library/lua/manifests/5.4");
    const blobs = pulled.filter((p) => p.startsWith("/v2/library/lua/blobs/sha256:"));
    // The config and every layer, each once.
    expect(blobs.length).toBeGreaterThanOrEqual(2);
    expect(new Set(blobs).size).toBe(blobs.length);

    const pull = pullOf("lua:5.4");
    await expect.poll(() => pull.getAttribute("data-state"), { timeout: 20_000, message: "the pull of lua:5.4 shown as done" }).toBe("done");
    const rows = pull.locator("tr[data-layer]");
    const layers = await rows.count();
    // Each layer the pull fetched is a row, downloaded: its blob was among the browser's requests.
    expect(layers).toBe(blobs.length - 1);
    for (let i = 0; i < layers; i++) {
      const row = rows.nth(i);
      expect(await row.getAttribute("data-source")).toBe("network");
      const id = (await row.getAttribute("data-layer"))!;
      expect(pulled.some((p) => p.includes(`/blobs/sha256:${id}`))).toBe(true);
      expect(await row.textContent()).toMatch(/^[0-9a-f]{12}[\d.]+ (kB|MB)downloaded: [\d.]+ (kB|MB) on the wire$/);
    }
    expect(await pull.locator(".summary").textContent()).toMatch(new RegExp(`^pulled in [\\d.]+ s: ${layers} downloaded \\([\\d.]+ MB on the wire\\)$`));
    expect(await pull.locator(".digest").textContent()).toMatch(/^sha256:[0-9a-f]{64}$/);
    await screenshot(lab.page, "page-images-pulled");
  }, 240_000);

  it("keeps a pulled image for the page: a second lua:5.4 container fetches nothing from the registry", async () => {
    const from = requests.length;
    await runFromForm("lua:5.4");
    expect(requests.slice(from).filter((u) => IMAGE_FILE.test(u))).toEqual([]);
    expect(await layer("containers").locator(".item.image-pull").count()).toBe(1);
  }, 180_000);

  it("pulls from the browser's cache when the page is opened again", async () => {
    // A fresh machine (the page would otherwise bring back its saved VM, whose guest has the image already): its pull reads the browser's cache.
    await lab.page.goto(`${lab.site.url}?fresh`);
    await waitForPrompt(lab.page, VM);
    await runFromForm("lua:5.4");
    const pull = pullOf("lua:5.4");
    await expect.poll(() => pull.getAttribute("data-state"), { timeout: 20_000 }).toBe("done");
    const sources = await pull.locator("tr[data-layer]").evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.source));
    expect(sources.length).toBeGreaterThan(0);
    expect(sources.every((s) => s === "browser-cache")).toBe(true);
    expect(await pull.locator(".summary").textContent()).toMatch(new RegExp(`: ${sources.length} from the browser's cache$`));
  }, 300_000);

  it("builds a Dockerfile typed in the guest's shell with docker build (its FROM pulled from the site), and runs the image", async () => {
    // A .dockerignore too: its matcher (@balena/dockerignore) needs Node's path, which the page's build gives it.
    await run(lab.page, VM, "mkdir -p /root/app && cd /root/app && echo '*.tmp' > .dockerignore", /app/, 30_000);
    await typeLine(lab.page, VM, "cat > Dockerfile <<'EOF'");
    await typeLine(lab.page, VM, "FROM busybox");
    await typeLine(lab.page, VM, "RUN echo built in the page > /msg");
    await typeLine(lab.page, VM, "EOF");
    const from = requests.length;
    const build = await run(lab.page, VM, "docker build -t hello .", /Successfully tagged hello:latest|Error|could not/, 600_000);
    expect(build).toMatch(/Step 1\/2 : FROM busybox\r?\nlatest: Pulling from library\/busybox\r?\n/);
    expect(build).toMatch(/Step 2\/2 : RUN echo built in the page > \/msg\r?\n ---> Running in [0-9a-f]{12}\r?\n/);
    expect(build).toMatch(/Successfully built [0-9a-f]{12}\r?\nSuccessfully tagged hello:latest/);
    expect(requests.slice(from).map((u) => new URL(u).pathname)).toContain("/v2/library/busybox/manifests/latest");
    await expect.poll(() => pullOf("busybox:latest").getAttribute("data-state"), { timeout: 20_000 }).toBe("done");

    const out = await run(lab.page, VM, "docker run --rm hello cat /msg", /built in the page\r?\n|Error|could not/, 300_000);
    expect(out).toMatch(/\r?\nbuilt in the page\r?\n/);
    expect(out).not.toMatch(/Unable to find image/);
    await screenshot(lab.page, "page-images-docker-build");
  }, 1_200_000);
});
