import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTENT_SECURITY_POLICY } from "../../../src/web/csp.ts";
import { type SiteServer, serveSite } from "../../../src/web/site-server.ts";

describe("the site server", () => {
  let dir: string;
  let site: SiteServer;
  const body = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperlab-site-"));
    await writeFile(join(dir, "index.html"), "<!doctype html>");
    await writeFile(join(dir, "kernel"), body);
    await writeFile(join(dir, "kernel.gz"), "not used for a range");
    for (const sub of ["blobs", "manifests"]) await mkdir(join(dir, "v2", "library", "lua", sub), { recursive: true });
    await writeFile(join(dir, "v2", "library", "lua", "blobs", `sha256:${"a".repeat(64)}`), "layer");
    await writeFile(join(dir, "v2", "library", "lua", "manifests", `sha256:${"b".repeat(64)}`), "{}");
    await writeFile(join(dir, "v2", "library", "lua", "manifests", "5.4"), "{}");
    site = await serveSite({ dir, port: 0 });
  });
  afterAll(async () => {
    await site?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("sends one byte range from the file itself, never its compressed copy", async () => {
    const r = await fetch(`${site.url}kernel`, { headers: { range: "bytes=0-4095", "accept-encoding": "gzip" } });
    expect(r.status).toBe(206);
    expect(r.headers.get("content-range")).toBe("bytes 0-4095/10000");
    expect(r.headers.get("content-encoding")).toBeNull();
    expect(Buffer.from(await r.arrayBuffer()).equals(body.subarray(0, 4096))).toBe(true);
  });

  it("tells a published port's link that reached it to open the link from the hyperlab page", async () => {
    const r = await fetch(`${site.url}_ports/page-vm-1/8080/`);
    expect(r.status).toBe(404);
    expect(await r.text()).toContain("<h1>Open this link from the hyperlab page</h1>");
  });

  it("sends the site's Content-Security-Policy with every answer: files, ranges, errors and the ports page", async () => {
    const answers = await Promise.all([
      fetch(site.url),
      fetch(`${site.url}kernel`, { headers: { range: "bytes=0-1" } }),
      fetch(`${site.url}missing.js`),
      fetch(`${site.url}_ports/page-vm-1/8080/`),
      fetch(`${site.url}index.html`, { method: "POST" }),
    ]);
    expect(answers.map((r) => r.status)).toEqual([200, 206, 404, 404, 405]);
    for (const r of answers) expect(r.headers.get("content-security-policy"), r.url).toBe(CONTENT_SECURITY_POLICY);
  });

  it("answers a range past the end with 416 and the file's size", async () => {
    const r = await fetch(`${site.url}kernel`, { headers: { range: "bytes=20000-" } });
    expect(r.status).toBe(416);
    expect(r.headers.get("content-range")).toBe("bytes */10000");
  });

  it("says it takes ranges, and sends the whole file without one", async () => {
    const r = await fetch(`${site.url}kernel`, { headers: { "accept-encoding": "identity" } });
    expect(r.status).toBe(200);
    expect(r.headers.get("accept-ranges")).toBe("bytes");
    expect((await r.arrayBuffer()).byteLength).toBe(10_000);
  });

  it("lets the browser keep the registry's blobs and manifests by digest for ever, and has it ask again for a manifest by tag", async () => {
    const cacheControl = async (path: string) => (await fetch(`${site.url}v2/library/lua/${path}`)).headers.get("cache-control");
    expect(await cacheControl(`blobs/sha256:${"a".repeat(64)}`)).toBe("public, max-age=31536000, immutable");
    expect(await cacheControl(`manifests/sha256:${"b".repeat(64)}`)).toBe("public, max-age=31536000, immutable");
    expect(await cacheControl("manifests/5.4")).toBe("no-cache");
  });
});
