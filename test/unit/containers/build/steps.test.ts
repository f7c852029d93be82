import { describe, expect, it } from "vitest";
import { parseDockerfile, type Step } from "../../../../src/containers/build/dockerfile.ts";
import { type StageVars, applyMetadata, cacheKey, exposedPorts, runCreatedBy, runEnv } from "../../../../src/containers/build/steps.ts";
import type { ImageConfigFile } from "../../../../src/containers/image-store.ts";

const base: ImageConfigFile = { architecture: "386", os: "linux", config: { Env: ["PATH=/bin", "A=old"], Cmd: ["sh"] } };
const steps = (text: string): Step[] => parseDockerfile(`FROM busybox\n${text}`).stages[0]!.steps;
const fresh = (): StageVars => ({ args: new Map(), cmdSet: false });
const opts = { escape: "\\", buildArgs: new Map<string, string>(), globalArgs: new Map<string, string | undefined>() };

/** Applies the steps of `text` one after the other, as a build does. */
function apply(text: string, config = base, stage = fresh(), o = opts) {
  let c = config;
  const results = [];
  for (const s of steps(text)) {
    const r = applyMetadata(c, s, stage, o);
    c = { ...c, config: r.config };
    results.push(r);
  }
  return { config: c.config!, results, stage };
}

describe("what instructions do to an image config (dockerd's classic builder)", () => {
  it("ENV replaces a key in place and sees the values from before its own line", () => {
    const { config, results } = apply("ENV A=new B=$A\nENV C=${B}-x");
    expect(config.Env).toEqual(["PATH=/bin", "A=new", "B=old", "C=old-x"]);
    expect(results[0]!.createdBy).toBe("/bin/sh -c #(nop)  ENV A=new B=old");
  });

  it("WORKDIR joins relative paths to the one before, USER and LABEL take expanded words", () => {
    const { config } = apply("ENV D=srv\nWORKDIR /app\nWORKDIR $D/../data\nUSER nobody:${D}\nLABEL version=\"1 0\" who=$D");
    expect(config.WorkingDir).toBe("/app/data");
    expect(config.User).toBe("nobody:srv");
    expect(config.Labels).toEqual({ version: "1 0", who: "srv" });
  });

  it("CMD and ENTRYPOINT take the shell form through SHELL; ENTRYPOINT drops an inherited CMD", () => {
    expect(apply('SHELL ["/bin/ash", "-ec"]\nCMD echo hi').config.Cmd).toEqual(["/bin/ash", "-ec", "echo hi"]);
    const inherited = apply('ENTRYPOINT ["lua"]').config;
    expect(inherited.Entrypoint).toEqual(["lua"]);
    expect(inherited.Cmd).toBeUndefined();
    const both = apply('CMD ["main.lua"]\nENTRYPOINT ["lua"]').config;
    expect([both.Entrypoint, both.Cmd]).toEqual([["lua"], ["main.lua"]]);
  });

  it("records EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK and ONBUILD", () => {
    const { config } = apply('EXPOSE 80 53/udp 8000-8001\nVOLUME ["/data"]\nSTOPSIGNAL SIGINT\nHEALTHCHECK --timeout=2s CMD true\nONBUILD run echo hi');
    expect(Object.keys(config.ExposedPorts!)).toEqual(["80/tcp", "53/udp", "8000/tcp", "8001/tcp"]);
    expect(config.Volumes).toEqual({ "/data": {} });
    expect(config.StopSignal).toBe("SIGINT");
    expect(config.Healthcheck).toEqual({ Test: ["CMD-SHELL", "true"], Timeout: 2e9 });
    expect(config.OnBuild).toEqual(["RUN echo hi"]);
    expect(() => exposedPorts(["eighty"])).toThrow("invalid containerPort: eighty");
  });

  it("ARG takes --build-arg over its default and a global ARG's value when it has none; RUN gets them, ENV wins", () => {
    const stage = fresh();
    const o = { ...opts, buildArgs: new Map([["V", "from-cli"]]), globalArgs: new Map<string, string | undefined>([["G", "global"]]) };
    const { config } = apply("ARG V=dflt\nARG G\nARG A=shadowed\nARG NONE", base, stage, o);
    expect([...stage.args]).toEqual([["V", "from-cli"], ["G", "global"], ["A", "shadowed"], ["NONE", undefined]]);
    const { env, args } = runEnv({ ...base, config }, stage);
    expect(env).toEqual(["PATH=/bin", "A=old", "G=global", "V=from-cli"]);
    expect(runCreatedBy(["/bin/sh", "-c", "echo $V"], args)).toBe("|2 G=global V=from-cli /bin/sh -c echo $V");
  });

  it("cache keys change with the parent and with what the step does, and only then", async () => {
    const a = await cacheKey("sha256:parent", { step: "ENV A=1" });
    expect(await cacheKey("sha256:parent", { step: "ENV A=1" })).toBe(a);
    expect(await cacheKey("sha256:other", { step: "ENV A=1" })).not.toBe(a);
    expect(await cacheKey("sha256:parent", { step: "ENV A=2" })).not.toBe(a);
    const { results: r1 } = apply("ENV X=$A");
    const { results: r2 } = apply("ENV X=old");
    // The same expanded instruction is the same step.
    expect(r1[0]!.key).toEqual(r2[0]!.key);
  });
});
