import { gzipSync } from "node:zlib";
import { packTar } from "modern-tar";
import { describe, expect, it } from "vitest";
import { BuildContext, cleanPath, contentDigest, matchRegExp } from "../../../../src/containers/build/context.ts";

type Entry = Parameters<typeof packTar>[0][number];
const file = (name: string, text: string, mode = 0o644): Entry => ({ header: { name, size: Buffer.byteLength(text), type: "file", mode }, body: text });

async function context(entries: Entry[], gzip = false): Promise<BuildContext> {
  const tar = await packTar(entries);
  return BuildContext.fromTar([gzip ? new Uint8Array(gzipSync(tar)) : tar]);
}

describe("the build context", () => {
  it("reads a plain or gzip tar, with folders it only implies", async () => {
    const ctx = await context([file("./src/main.lua", "print(1)"), file("Dockerfile", "FROM busybox")], true);
    expect(ctx.get("src")?.type).toBe("directory");
    expect(ctx.text("Dockerfile")).toBe("FROM busybox");
    await expect(BuildContext.fromTar([new TextEncoder().encode("not a tar at all, but long enough to be read as one... ".repeat(20))])).rejects.toThrow("is not a tar archive");
  });

  it("matches COPY sources with Go's wildcards, which do not cross folders", async () => {
    const ctx = await context([file("a.txt", "a"), file("b.txt", "b"), file("sub/c.txt", "c")]);
    expect(ctx.sources("*.txt").map((e) => e.path)).toEqual(["a.txt", "b.txt"]);
    expect(ctx.sources("sub/?.txt").map((e) => e.path)).toEqual(["sub/c.txt"]);
    expect(ctx.sources("nothere")).toEqual([]);
    expect(() => ctx.sources("../secret")).toThrow("forbidden path outside the build context: ../secret");
    expect(matchRegExp("[ab].txt").test("a.txt")).toBe(true);
    expect(cleanPath("./x/../y/")).toBe("y");
  });

  it("leaves out what .dockerignore excludes, with ! exceptions, as Docker does", async () => {
    const ctx = await context([file(".dockerignore", "# comment\n*.log\nsecrets\n!secrets/public.txt\n"), file("app.log", "x"), file("keep.txt", "k"), file("secrets/key", "s"), file("secrets/public.txt", "p"), file("sub/app.log", "nested")]);
    const kept = ctx.withoutIgnored().context.all().map((e) => e.path);
    expect(kept).toEqual(["", ".dockerignore", "keep.txt", "secrets", "secrets/public.txt", "sub", "sub/app.log"]);
  });

  it("digests what files hold, not when they were written", async () => {
    const one = await context([{ header: { name: "f", size: 1, type: "file", mtime: new Date(1000) }, body: "x" }]);
    const two = await context([{ header: { name: "f", size: 1, type: "file", mtime: new Date(5000) }, body: "x" }]);
    const three = await context([{ header: { name: "f", size: 1, type: "file" }, body: "y" }]);
    const digest = async (c: BuildContext) => contentDigest(c.sources("f"), "f");
    expect(await digest(one)).toBe(await digest(two));
    expect(await digest(one)).not.toBe(await digest(three));
  });
});
