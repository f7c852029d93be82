import { packTar } from "modern-tar";
import { describe, expect, it } from "vitest";
import { mayHaveWhiteouts, opaqueFolders, tarNames, whiteoutArgs } from "../../../src/containers/guest-layers.ts";

describe("image layers in the guest (overlay whiteouts ↔ OCI whiteouts)", () => {
  it("keeps the outermost opaque folders the probe reports", () => {
    expect(opaqueFolders("./d\n./d/sub\n./e/f\n\n./e/f/g/h\n")).toEqual(["d", "e/f"]);
    expect(opaqueFolders("")).toEqual([]);
  });

  it("lists a layer's whiteouts for the guest script: plain ones first, the root's opaque marker dropped", () => {
    expect(whiteoutArgs(["./a/", "./a/.wh..wh..opq", "./a/.wh.b", ".wh.top", ".wh..wh..opq", "c/d"])).toEqual(["w:a/.wh.b", "w:.wh.top", "o:a"]);
  });

  it("finds whether a tar may hold whiteouts before reading its entries", async () => {
    const plain = await packTar([{ header: { name: "etc/hosts", size: 2, type: "file" }, body: "hi" }]);
    const withWhiteout = await packTar([{ header: { name: "etc/.wh.hosts", size: 0, type: "file" }, body: "" }]);
    expect(mayHaveWhiteouts(plain)).toBe(false);
    expect(mayHaveWhiteouts(withWhiteout)).toBe(true);
    expect(await tarNames(withWhiteout)).toEqual(["etc/.wh.hosts"]);
  });
});
