import { describe, expect, it } from "vitest";
import { parseDockerfile } from "../../../../src/containers/build/dockerfile.ts";

describe("parsing a Dockerfile (dockerfile-ast, checked as dockerd checks it)", () => {
  it("splits stages, keeps ARGs before the first FROM apart, and names stages in lower case", () => {
    const df = parseDockerfile("ARG BASE=busybox\nFROM ${BASE} AS Build\nRUN echo hi\nFROM busybox\nCOPY --from=build /a /b\n");
    expect(df.globalArgs.map((a) => a.text)).toEqual(["ARG BASE=busybox"]);
    expect(df.stages.map((s) => [s.name, s.from.image, s.steps.map((x) => x.kind)])).toEqual([
      ["build", "${BASE}", ["RUN"]],
      [undefined, "busybox", ["COPY"]],
    ]);
    const copy = df.stages[1]!.steps[0]!;
    expect(copy).toMatchObject({ kind: "COPY", from: "build", sources: ["/a"], dest: "/b", line: 5 });
  });

  it("joins continuation lines as dockerd does, dropping comment and blank lines inside them", () => {
    const df = parseDockerfile("FROM busybox\nRUN echo one \\\n    two && \\\n    # a comment\n\n    echo three\nCMD x\n");
    const run = df.stages[0]!.steps[0]!;
    expect(run).toMatchObject({ kind: "RUN", line: 2, command: { form: "shell", text: "echo one     two &&     echo three" } });
    expect(df.stages[0]!.steps[1]).toMatchObject({ kind: "CMD", line: 7 });
  });

  it("reads the escape directive (a backtick continues lines) and accepts Docker's syntax directive", () => {
    const df = parseDockerfile("# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\nRUN echo a `\n  b\n");
    expect(df.escape).toBe("`");
    expect(df.syntax).toBe("docker/dockerfile:1");
    expect(df.stages[0]!.steps[0]).toMatchObject({ command: { form: "shell", text: "echo a   b" } });
    expect(() => parseDockerfile("# syntax=example.com/other/frontend\nFROM busybox\n")).toThrow("classic builder");
  });

  it("tells the exec form (a JSON array) from the shell form", () => {
    const df = parseDockerfile('FROM busybox\nRUN ["sh", "-c", "echo a b"]\nCMD [not json\nENTRYPOINT ["x", 1]\n');
    const [run, cmd, entry] = df.stages[0]!.steps;
    expect(run).toMatchObject({ command: { form: "exec", argv: ["sh", "-c", "echo a b"] } });
    expect(cmd).toMatchObject({ command: { form: "shell", text: "[not json" } });
    expect(entry).toMatchObject({ command: { form: "shell", text: '["x", 1]' } });
  });

  it("maps ENV, LABEL and ARG pairs (old and new forms) and COPY's flags", () => {
    const df = parseDockerfile('FROM busybox\nENV A=1 B="two words"\nENV OLD style value\nLABEL "k 1"=v\nARG X\nARG Y=2\nCOPY --chown=app:app --chmod=640 a b* /dst/\n');
    const [env, old, label, x, y, copy] = df.stages[0]!.steps;
    expect(env).toMatchObject({ pairs: [{ key: "A", value: "1" }, { key: "B", value: '"two words"' }] });
    expect(old).toMatchObject({ pairs: [{ key: "OLD", value: "style value" }] });
    expect(label).toMatchObject({ pairs: [{ key: "k 1", value: "v" }] });
    expect(x).toMatchObject({ kind: "ARG", pairs: [{ key: "X", value: undefined }] });
    expect(y).toMatchObject({ kind: "ARG", pairs: [{ key: "Y", value: "2" }] });
    expect(copy).toMatchObject({ kind: "COPY", sources: ["a", "b*"], dest: "/dst/", chown: "app:app", chmod: "640" });
  });

  it("runs a heredoc's body as a script and records HEALTHCHECK's options in nanoseconds", () => {
    const df = parseDockerfile("FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\nHEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost\n");
    const [run, health] = df.stages[0]!.steps;
    expect(run).toMatchObject({ command: { form: "shell", text: "echo one\necho two" } });
    expect(health).toMatchObject({ health: { Test: ["CMD-SHELL", "wget -q localhost"], Interval: 5e9, Retries: 3 } });
  });

  it("names the file, the line and the instruction of what dockerd refuses", () => {
    const bad = (text: string) => () => parseDockerfile(text, "app/Dockerfile");
    expect(bad("FROM busybox\nRUN true\nFOO bar\n")).toThrow("dockerfile parse error line 3 of app/Dockerfile: unknown instruction: FOO");
    expect(bad("FROM busybox\nENV\n")).toThrow("line 2 of app/Dockerfile: ENV requires at least one argument");
    expect(bad("FROM busybox\nCOPY onlyone\n")).toThrow("line 2 of app/Dockerfile: COPY requires at least two arguments");
    expect(bad("FROM busybox\nCOPY --chmown=1 a b\n")).toThrow("line 2 of app/Dockerfile: COPY: unknown flag: --chmown");
    expect(bad("FROM busybox\nRUN --mount=type=cache,target=/x true\n")).toThrow("RUN --mount needs BuildKit");
    expect(bad("RUN true\nFROM busybox\n")).toThrow("line 1 of app/Dockerfile: no build stage in current context: RUN");
    expect(bad("FROM busybox AS 1st\n")).toThrow('invalid name for build stage: "1st"');
    expect(bad("FROM a b\n")).toThrow("FROM requires either one or three arguments");
    expect(bad("FROM busybox\nSHELL /bin/bash -c\n")).toThrow("SHELL requires the arguments to be in JSON form");
    expect(bad("# just a comment\n")).toThrow("cannot be empty");
  });
});
