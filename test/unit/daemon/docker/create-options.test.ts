import { describe, expect, it } from "vitest";
import { createOptions } from "../../../../src/daemon/docker/create-options.ts";
import { MASKED_PATHS } from "../../../../src/containers/confinement.ts";

describe("Docker's create body: confinement", () => {
  const create = (HostConfig: Record<string, unknown>) => createOptions({ Image: "busybox", HostConfig }, {}).options;

  it("maps --cap-add, --cap-drop, --read-only and --security-opt to the engine's options", () => {
    const o = create({ CapAdd: ["NET_ADMIN"], CapDrop: ["chown"], ReadonlyRootfs: true, SecurityOpt: ["no-new-privileges:true", "seccomp=unconfined"] });
    expect(o).toMatchObject({ capAdd: ["NET_ADMIN"], capDrop: ["chown"], readOnly: true, noNewPrivileges: true, seccomp: "unconfined" });
  });

  it("passes Docker's defaults (the docker CLI sends every field) and takes the profile the docker CLI read from a file", () => {
    const o = create({ CapAdd: null, CapDrop: null, SecurityOpt: null, ReadonlyRootfs: false, Privileged: false, MaskedPaths: [...MASKED_PATHS].reverse() });
    expect(o.readOnly).toBe(false);
    expect(o.seccomp).toBeUndefined();
    expect(create({ SecurityOpt: ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'] }).seccomp).toEqual({ defaultAction: "SCMP_ACT_ALLOW" });
  });

  it("refuses --privileged, changed system paths and bad security options, naming them", () => {
    expect(() => create({ Privileged: true })).toThrow("HostConfig.Privileged is not supported by hyperlab");
    expect(() => create({ MaskedPaths: [] })).toThrow("HostConfig.MaskedPaths is not supported by hyperlab");
    expect(() => create({ ReadonlyPaths: [] })).toThrow("HostConfig.ReadonlyPaths is not supported by hyperlab");
    expect(() => create({ SecurityOpt: ["bogus=1"] })).toThrow('invalid --security-opt 2: "bogus=1"');
    // As dockerd: CapAdd is a StrSlice (one string is a list of one); a number is refused in Go's words.
    expect(create({ CapAdd: "NET_ADMIN" }).capAdd).toEqual(["NET_ADMIN"]);
    expect(() => create({ CapAdd: 5 })).toThrow(/json: cannot unmarshal number .*into Go struct field HostConfig\.CapAdd/);
  });
});
