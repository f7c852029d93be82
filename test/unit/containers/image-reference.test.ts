import { describe, expect, it } from "vitest";
import { familiarName, normalizeName, parseReference } from "../../../src/containers/image-reference.ts";

describe("image names as Docker reads them", () => {
  it("puts a name without a registry on Docker Hub, a one-part name in library/", () => {
    expect(parseReference("busybox")).toEqual({ domain: "docker.io", path: "library/busybox", tag: undefined, digest: undefined });
    expect(parseReference("me/app:1.0")).toMatchObject({ domain: "docker.io", path: "me/app", tag: "1.0" });
    expect(parseReference("localhost:5000/app")).toMatchObject({ domain: "localhost:5000", path: "app" });
    expect(parseReference("ghcr.io/o/r@sha256:" + "a".repeat(64))).toMatchObject({ domain: "ghcr.io", path: "o/r", digest: "sha256:" + "a".repeat(64) });
    expect(parseReference("index.docker.io/library/busybox").domain).toBe("docker.io");
  });

  it("keys names in Docker's short form with a tag", () => {
    expect(normalizeName("busybox")).toBe("busybox:latest");
    expect(normalizeName("docker.io/library/busybox:latest")).toBe("busybox:latest");
    expect(normalizeName("docker.io/me/app")).toBe("me/app:latest");
    expect(normalizeName("ghcr.io/o/r:2")).toBe("ghcr.io/o/r:2");
    expect(familiarName(parseReference("docker.io/library/lua"))).toBe("lua");
  });

  it("refuses what Docker refuses, in its words", () => {
    expect(() => parseReference("Busybox")).toThrow("invalid reference format: repository name must be lowercase");
    expect(() => parseReference("a b")).toThrow("invalid reference format");
    expect(() => parseReference("busybox:")).toThrow("invalid reference format");
    expect(() => parseReference("a".repeat(64))).toThrow("cannot specify 64-byte hexadecimal strings");
  });
});
