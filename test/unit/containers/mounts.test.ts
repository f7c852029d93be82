import { describe, expect, it } from "vitest";
import { HyperlabError } from "../../../src/errors.ts";
import { HOST_MOUNT, MountHost, mountOfDocker, parseMountSpec, parseVolumeSpec } from "../../../src/containers/mounts.ts";
import type { VolumeInfo, VolumeStore } from "../../../src/containers/volumes.ts";

const messageOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return "no error";
};

describe("parseVolumeSpec (docker -v)", () => {
  it("reads a host directory, a named volume and an anonymous volume, with options", () => {
    expect(parseVolumeSpec("/srv/site:/www:ro")).toEqual({ type: "bind", source: "/srv/site", target: "/www", readOnly: true, createSource: true, mode: "ro" });
    expect(parseVolumeSpec("data:/data")).toEqual({ type: "volume", source: "data", target: "/data", readOnly: false, mode: "" });
    expect(parseVolumeSpec("/scratch")).toEqual({ type: "volume", target: "/scratch", readOnly: false, mode: "" });
    expect(parseVolumeSpec("/scratch:ro")).toMatchObject({ type: "volume", target: "/scratch", readOnly: true });
    expect(parseVolumeSpec("/a//b/./:/x:rw,z")).toMatchObject({ type: "bind", source: "/a/b", readOnly: false, mode: "rw,z" });
  });

  it("takes relative host paths from the given directory (as the docker CLI does), and only then", () => {
    expect(parseVolumeSpec("./site:/www", "/home/me/proj")).toMatchObject({ type: "bind", source: "/home/me/proj/site" });
    expect(parseVolumeSpec(".:/app", "/home/me")).toMatchObject({ type: "bind", source: "/home/me" });
    expect(parseVolumeSpec("site:/www", "/home/me")).toMatchObject({ type: "volume", source: "site" });
  });

  it("names the wrong part and shows the forms that work", () => {
    const forms = "use -v NAME:/path[:ro] (a volume), -v /host/dir:/path[:ro] (a host directory) or -v /path (a new anonymous volume)";
    expect(messageOf(() => parseVolumeSpec("a:b:c:d"))).toBe(`invalid volume specification: 'a:b:c:d': it has 4 parts separated by ':', at most 3 go; ${forms}`);
    expect(messageOf(() => parseVolumeSpec(":/x"))).toBe(`invalid spec: :/x: empty section between colons; ${forms}`);
    expect(messageOf(() => parseVolumeSpec("/a:/x:zz"))).toContain("invalid mode: zz (in '/a:/x:zz')");
    expect(messageOf(() => parseVolumeSpec("/a:/x:ro,rw"))).toContain("invalid mode: ro,rw");
    expect(messageOf(() => parseVolumeSpec("/a:rel"))).toBe(`invalid volume specification: '/a:rel': invalid mount config for type "bind": invalid mount path: 'rel' mount path must be absolute`);
    expect(messageOf(() => parseVolumeSpec("/a:/"))).toContain("destination can't be '/'");
    expect(messageOf(() => parseVolumeSpec("bad/name:/x"))).toContain('"bad/name" includes invalid characters for a local volume name');
    expect((() => { try { parseVolumeSpec("a:b:c:d"); } catch (e) { return (e as HyperlabError).detail; } })()).toEqual({ part: "spec" });
  });
});

describe("parseMountSpec (docker --mount)", () => {
  it("reads bind and volume mounts with Docker's key names", () => {
    expect(parseMountSpec("type=bind,src=/srv,dst=/www,readonly")).toEqual({ type: "bind", source: "/srv", target: "/www", readOnly: true, createSource: false, mode: "" });
    expect(parseMountSpec("type=volume,source=data,target=/d,volume-label=a=b")).toMatchObject({ type: "volume", source: "data", target: "/d", labels: { a: "b" } });
    expect(parseMountSpec("target=/anon")).toMatchObject({ type: "volume", source: undefined, target: "/anon" });
    expect(parseMountSpec("type=volume,target=/d,ro=false")).toMatchObject({ readOnly: false });
  });

  it("names the wrong key or value", () => {
    expect(messageOf(() => parseMountSpec("type=bind,source=/srv"))).toContain('invalid argument "type=bind,source=/srv" for "--mount" flag: target is required; use --mount type=volume');
    expect(messageOf(() => parseMountSpec("type=volume,target=/x,foo=bar"))).toContain("unexpected key 'foo' in 'foo=bar'");
    expect(messageOf(() => parseMountSpec("type=nfs,target=/x"))).toContain("mount type unknown: 'nfs'");
    expect(messageOf(() => parseMountSpec("type=bind,source=rel,target=/x"))).toContain("invalid mount path: 'rel' mount path must be absolute");
    expect(messageOf(() => parseMountSpec("type=volume,target=/x,readonly=maybe"))).toContain("invalid value for readonly: maybe");
    expect(messageOf(() => parseMountSpec("type=tmpfs,target=/x"))).toContain("--mount type=tmpfs is not supported by hyperlab yet");
  });
});

describe("mountOfDocker (the API's HostConfig.Mounts)", () => {
  it("reads Docker's mount objects and refuses what hyperlab does not do", () => {
    expect(mountOfDocker({ Type: "bind", Source: "/srv", Target: "/www", ReadOnly: true })).toMatchObject({ type: "bind", source: "/srv", readOnly: true, createSource: false });
    expect(mountOfDocker({ Type: "volume", Target: "/d" })).toMatchObject({ type: "volume", source: undefined });
    expect(messageOf(() => mountOfDocker({ Type: "tmpfs", Target: "/t" }))).toContain('mounts of type "tmpfs" are not supported');
    expect(messageOf(() => mountOfDocker({ Type: "bind", Target: "/t" }))).toContain("field Source must not be empty");
    expect(messageOf(() => mountOfDocker({ Type: "volume", Target: "/t", VolumeOptions: { DriverConfig: { Name: "nfs" } } }))).toContain("volume driver 'nfs' is not supported");
  });
});

/** A volume store in memory. */
function memoryVolumes(kind: "host" | "guest"): VolumeStore & { names(): string[] } {
  const vols = new Map<string, VolumeInfo>();
  let n = 0;
  return {
    kind,
    names: () => [...vols.keys()],
    list: async () => [...vols.values()],
    find: async (name) => vols.get(name),
    create: async (o = {}) => {
      const name = o.name ?? `anon${++n}`;
      const v = vols.get(name) ?? { name, createdAt: "", labels: {}, anonymous: o.anonymous === true, mountpoint: `/vols/${name}` };
      vols.set(name, v);
      return v;
    },
    remove: async (name) => void vols.delete(name),
    usage: async () => 0,
  };
}

describe("MountHost", () => {
  const agent = { mkdir: async () => {}, mount: async () => {}, umount: async () => {}, stat: async () => Promise.reject(new Error("ENOENT")), exec: async () => ({ exitCode: 0, signal: 0, stdout: "", stderr: "" }) };

  it("shares binds and host volumes over 9p, keeps guest volumes in the guest", async () => {
    const shared: Array<{ name: string; hostPath: string; readOnly: boolean }> = [];
    const host = new MountHost(agent, { volumes: memoryVolumes("host"), share: async (s) => (shared.push(s), s.hostPath) });
    const [bind, vol] = await host.resolve([
      { type: "bind", source: "/srv/site", target: "/www", readOnly: true },
      { type: "volume", source: "data", target: "/data/" },
    ]);
    expect(bind).toMatchObject({ type: "bind", source: "/srv/site", destination: "/www", readOnly: true });
    expect(bind!.guestPath).toMatch(new RegExp(`^${HOST_MOUNT}/b-[0-9a-f]{16}-ro$`));
    expect(vol).toMatchObject({ type: "volume", source: "data", destination: "/data", guestPath: `${HOST_MOUNT}/v-data`, share: "v-data" });
    expect(shared.map((s) => s.readOnly)).toEqual([true, false]);
    const page = new MountHost(agent, { volumes: memoryVolumes("guest") });
    expect((await page.resolve([{ type: "volume", source: "data", target: "/d" }]))[0]).toMatchObject({ guestPath: "/vols/data" });
  });

  it("refuses a bind where there are no host directories (a page), saying what to use instead", async () => {
    const page = new MountHost(agent, { volumes: memoryVolumes("guest"), share: async () => Promise.reject(new HyperlabError("NOT_SUPPORTED", "no host")) });
    const err = await page.resolve([{ type: "bind", source: "/home/me", target: "/x" }]).catch((e: HyperlabError) => e);
    expect(err).toMatchObject({ code: "NOT_SUPPORTED" });
    expect((err as Error).message).toBe(
      "cannot bind-mount /home/me: this VM runs in a web page, which has no host directories. Use a named volume (-v NAME:/path), or drop files onto the terminal to put them in the guest",
    );
  });

  it("refuses two mounts on one path, and removes the anonymous volumes it made when a later mount fails", async () => {
    const volumes = memoryVolumes("guest");
    const host = new MountHost(agent, { volumes });
    await expect(host.resolve([{ type: "volume", target: "/a" }, { type: "volume", target: "/a/" }])).rejects.toThrow("Duplicate mount point: /a");
    await expect(host.resolve([{ type: "volume", target: "/a" }, { type: "bind", source: "/x", target: "/b" }])).rejects.toThrow(/no host directories/);
    expect(volumes.names()).toEqual([]);
  });

  it("binds a guest's own path as it is when the guest's docker asks (nothing of the host is shared)", async () => {
    const shared: string[] = [];
    const host = new MountHost(agent, { share: async (s) => (shared.push(s.hostPath), s.hostPath) });
    expect((await host.resolve([{ type: "bind", source: "/etc", target: "/x", inGuest: true, createSource: true }]))[0]).toMatchObject({ source: "/etc", guestPath: "/etc" });
    await expect(host.resolve([{ type: "bind", source: "/nope", target: "/x", inGuest: true }])).rejects.toThrow("bind source path does not exist: /nope");
    expect(shared).toEqual([]);
  });

  it("says Docker's words for a bind source that does not exist", async () => {
    const host = new MountHost(agent, { share: async () => Promise.reject(new HyperlabError("INVALID_ARGUMENT", "x", { reason: "missing" })) });
    await expect(host.resolve([{ type: "bind", source: "/nope", target: "/x" }])).rejects.toThrow('invalid mount config for type "bind": bind source path does not exist: /nope');
  });
});
