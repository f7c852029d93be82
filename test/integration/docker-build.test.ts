// `docker build` (the real docker CLI, which falls back to the classic
// builder since the daemon says Builder-Version 1) and `hyperlab build`
// against hyperlab's daemon: RUN steps in the guest, layers with whiteouts,
// the cache across builds and daemon restarts, multi-stage builds, and what
// a user sees when a Dockerfile is wrong.
import { mkdtemp, readdir, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hyperlab, startDaemon } from "./daemon-process.ts";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

/** A build context folder holding `files` (path → text). */
async function contextDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "hyperlab-build-ctx-"));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

/** The build's steps as the CLI printed them ("Step 2/6 : …" lines and what followed each). */
function stepLines(stdout: string): string[] {
  return stdout.split("\n").filter((l) => /^(Step \d+\/\d+ : | ---> )/.test(l));
}

const SIX_STEPS = `FROM busybox
ENV GREETING=hello
WORKDIR /app
COPY hello.txt ./
RUN cat hello.txt && echo built > /built
CMD ["cat", "/app/hello.txt"]
`;

describe("docker build against hyperlab's daemon", () => {
  let lab: DockerLab;
  /** a daemon started again over the lab's data root (the lab stops only its first) */
  let restarted: Awaited<ReturnType<typeof startDaemon>> | undefined;
  const docker = (...args: string[]) => lab.docker(args);
  const dirs: string[] = [];
  const context = async (files: Record<string, string>) => {
    const d = await contextDir(files);
    dirs.push(d);
    return d;
  };
  const blobs = async () => (await readdir(join(lab.dir, "data", "images", "blobs", "sha256")).catch(() => [])).filter((n) => !n.startsWith(".")).sort();

  beforeAll(async () => {
    lab = await dockerLab();
  });
  afterAll(async () => {
    await restarted?.stop();
    await lab?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("builds six steps with the classic builder's output, and the image runs", async () => {
    const ctx = await context({ Dockerfile: SIX_STEPS, "hello.txt": "hi from the context\n" });
    const r = await docker("build", "-t", "six:1", ctx);
    expect(r.code).toBe(0);
    // docker 28 without buildx falls back to the classic builder, which this daemon is.
    expect(r.stderr).toContain("DEPRECATED: The legacy builder is deprecated");
    expect(r.stdout).toMatch(/^Step 1\/6 : FROM busybox\n ---> [0-9a-f]{12}\nStep 2\/6 : ENV GREETING=hello\n ---> [0-9a-f]{12}\n/m);
    expect(r.stdout).toMatch(/Step 5\/6 : RUN cat hello.txt && echo built > \/built\n ---> Running in [0-9a-f]{12}\nhi from the context\nRemoving intermediate container [0-9a-f]{12}\n ---> [0-9a-f]{12}\n/);
    expect(r.stdout).toMatch(/Successfully built ([0-9a-f]{12})\nSuccessfully tagged six:1\n$/);
    expect(await docker("run", "--rm", "six:1")).toMatchObject({ code: 0, stdout: "hi from the context\n" });
    expect((await docker("run", "--rm", "six:1", "sh", "-c", "cat /built; pwd; echo $GREETING")).stdout).toBe("built\n/app\nhello\n");
    const history = await docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", "six:1");
    expect(history.stdout.split("\n").slice(0, 5)).toEqual([
      '/bin/sh -c #(nop)  CMD ["cat" "/app/hello.txt"]|0B',
      expect.stringMatching(/^\/bin\/sh -c cat hello.txt && echo built > \/built\|\d+B$/),
      expect.stringMatching(/^\/bin\/sh -c #\(nop\) COPY file:[0-9a-f]{64} in \.\/ \|\d+B$/),
      "/bin/sh -c #(nop) WORKDIR /app|0B",
      "/bin/sh -c #(nop)  ENV GREETING=hello|0B",
    ]);
  });

  it("takes every step from the cache the second time, and only the changed step after an edit", async () => {
    const ctx = await context({ Dockerfile: SIX_STEPS, "hello.txt": "cached\n" });
    const first = await docker("build", "-t", "cached", ctx);
    expect(first.code).toBe(0);
    const again = await docker("build", "-t", "cached", ctx);
    expect(again.stdout.match(/ ---> Using cache\n/g)).toHaveLength(5);
    expect(again.stdout).not.toContain("Running in");
    // The same image ID: nothing was made again.
    expect(again.stdout.match(/Successfully built (\w+)/)![1]).toBe(first.stdout.match(/Successfully built (\w+)/)![1]);
    await writeFile(join(ctx, "Dockerfile"), SIX_STEPS.replace('CMD ["cat", "/app/hello.txt"]', 'CMD ["echo", "changed"]'));
    const edited = await docker("build", "-t", "cached", ctx);
    expect(edited.stdout.match(/ ---> Using cache\n/g)).toHaveLength(4);
    expect(stepLines(edited.stdout).slice(-2)).toEqual(['Step 6/6 : CMD ["echo", "changed"]', expect.stringMatching(/^ ---> [0-9a-f]{12}$/)]);
    // A changed file busts the COPY step and every step after it.
    await writeFile(join(ctx, "hello.txt"), "other bytes\n");
    const copied = await docker("build", "-t", "cached", ctx);
    expect(copied.stdout.match(/ ---> Using cache\n/g)).toHaveLength(2);
    expect(copied.stdout).toContain("other bytes");
    const noCache = await docker("build", "--no-cache", "-q", ctx);
    expect(noCache.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
  });

  it("builds several stages: ARG before and after FROM, COPY --from, --target, and the config in docker inspect", async () => {
    const ctx = await context({
      Dockerfile: `ARG BASE=busybox
ARG GREETING=hello
FROM \${BASE} AS build
ARG GREETING
RUN mkdir -p /out && echo "$GREETING from the build stage" > /out/message && adduser -D -u 1234 app 2>/dev/null || echo "app:x:1234:1234::/home/app:/bin/sh" >> /etc/passwd
FROM busybox
ARG VERSION=1.0
LABEL org.example.version=$VERSION
ENV APP_HOME=/srv/app PATH=/srv/app/bin:/usr/bin:/bin
WORKDIR $APP_HOME
COPY --from=build --chown=1234:1234 /out/message ./
COPY --from=0 /etc/passwd /etc/passwd
USER app
EXPOSE 8080
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s CMD test -f message
ENTRYPOINT ["cat"]
CMD ["message"]
`,
    });
    const r = await docker("build", "-t", "stages", "--build-arg", "GREETING=hi", "--build-arg", "VERSION=2.5", ctx);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Step 1\/18 : ARG BASE=busybox$/m);
    expect(await docker("run", "--rm", "stages")).toMatchObject({ code: 0, stdout: "hi from the build stage\n" });
    expect((await docker("run", "--rm", "--entrypoint", "sh", "stages", "-c", "id -u; stat -c '%u %a' message; pwd")).stdout).toBe("1234\n1234 644\n/srv/app\n");
    const [image] = JSON.parse((await docker("inspect", "stages")).stdout) as Array<{ Config: Record<string, unknown> }>;
    expect(image!.Config).toMatchObject({
      User: "app",
      WorkingDir: "/srv/app",
      Entrypoint: ["cat"],
      Cmd: ["message"],
      Env: ["PATH=/srv/app/bin:/usr/bin:/bin", "APP_HOME=/srv/app"],
      Labels: { "org.example.version": "2.5" },
      ExposedPorts: { "8080/tcp": {} },
      StopSignal: "SIGINT",
      Healthcheck: { Test: ["CMD-SHELL", "test -f message"], Interval: 30_000_000_000 },
    });
    const target = await docker("build", "-q", "--target", "build", "--build-arg", "GREETING=hi", ctx);
    expect(target.code).toBe(0);
    const id = target.stdout.trim();
    expect((await docker("run", "--rm", id, "cat", "/out/message")).stdout).toBe("hi from the build stage\n");
    const noTarget = await docker("build", "--target", "nosuch", ctx);
    expect(noTarget.code).toBe(1);
    expect(noTarget.stderr).toContain("failed to reach build target nosuch in Dockerfile");
  });

  it("leaves out what .dockerignore excludes, and stores deletions as whiteouts that survive a new guest", async () => {
    const ctx = await context({
      Dockerfile: "FROM busybox\nCOPY . /ctx/\nRUN rm /bin/vi && rm -rf /ctx/dir && mkdir /ctx/dir && echo new > /ctx/dir/n\nCMD find /ctx | sort\n",
      ".dockerignore": "*.log\nsecret*\n!secret-but-public.txt\n",
      "app.txt": "a",
      "debug.log": "l",
      "secret.key": "s",
      "secret-but-public.txt": "p",
      "dir/old": "o",
    });
    const r = await docker("build", "-t", "ignored", ctx);
    expect(r.code).toBe(0);
    const listing = "/ctx\n/ctx/.dockerignore\n/ctx/Dockerfile\n/ctx/app.txt\n/ctx/dir\n/ctx/dir/n\n/ctx/secret-but-public.txt\n";
    expect((await docker("run", "--rm", "ignored")).stdout).toBe(listing);
    expect((await docker("run", "--rm", "ignored", "sh", "-c", "test -e /bin/vi && echo vi || echo no vi")).stdout).toBe("no vi\n");
    // A daemon started afresh over the same data root: a new guest unpacks the layers from the store.
    await lab.daemon.stop();
    restarted = await startDaemon(lab.socket, ["--warm-pool", "0", "--data-root", join(lab.dir, "data")]);
    expect((await docker("run", "--rm", "ignored")).stdout).toBe(listing);
    expect((await docker("run", "--rm", "ignored", "sh", "-c", "test -e /bin/vi && echo vi || echo no vi")).stdout).toBe("no vi\n");
    // The cache is in the store: it outlived the daemon.
    expect((await docker("build", "-t", "ignored", ctx)).stdout.match(/Using cache/g)).toHaveLength(3);
  });

  it("stops at a failing RUN with its output and exit status, and stores nothing of that step", async () => {
    const ctx = await context({ Dockerfile: "FROM busybox\nRUN echo out; echo err >&2; exit 3\n" });
    const before = await blobs();
    const r = await docker("build", "-t", "failing", ctx);
    // As with dockerd: the docker CLI exits with the RUN's status.
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/Step 2\/2 : RUN echo out; echo err >&2; exit 3\n ---> Running in [0-9a-f]{12}\nout\n/);
    expect(r.stdout + r.stderr).toContain("err");
    expect(r.stderr).toContain("The command '/bin/sh -c echo out; echo err >&2; exit 3' returned a non-zero code: 3");
    expect(await blobs()).toEqual(before);
    expect((await docker("images", "-q", "failing")).stdout).toBe("");
  });

  it("names the file, the line and the instruction of a syntax error, and a missing COPY source", async () => {
    const ctx = await context({ Dockerfile: "FROM busybox\nRUN true\nCOPPY a b\n", "other.Dockerfile": "FROM busybox\nENV\n" });
    const syntax = await docker("build", ctx);
    expect(syntax.code).toBe(1);
    expect(syntax.stderr).toContain("Error response from daemon: dockerfile parse error line 3 of Dockerfile: unknown instruction: COPPY");
    const other = await docker("build", "-f", join(ctx, "other.Dockerfile"), ctx);
    expect(other.stderr).toContain("dockerfile parse error line 2 of other.Dockerfile: ENV requires at least one argument");
    await writeFile(join(ctx, "Dockerfile"), "FROM busybox\nCOPY nothere /x\n");
    const missing = await docker("build", ctx);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("COPY failed: file not found in build context or excluded by .dockerignore: stat nothere: file does not exist");
    await writeFile(join(ctx, "Dockerfile"), "FROM busybox\nADD https://example.com/file.tar.gz /x/\n");
    const remote = await docker("build", ctx);
    expect(remote.stderr).toContain("hyperlab's builds reach no network");
  });

  it("builds the two examples, one on Lua 5.1 and one on Lua 5.4, and runs them side by side", async () => {
    const examples = fileURLToPath(new URL("../../examples/", import.meta.url));
    for (const app of ["lua51-app", "lua54-app"]) expect((await docker("build", "-q", "-t", app, join(examples, app))).code).toBe(0);
    // old sleeps 1 s between rounds: 5 rounds keep it running while new starts on a loaded machine.
    expect((await docker("run", "-d", "--name", "old", "lua51-app", "5")).code).toBe(0);
    expect((await docker("run", "-d", "--name", "new", "lua54-app", "3")).code).toBe(0);
    // Both run at once, each with its own Lua, on one kernel.
    expect((await docker("ps", "--format", "{{.Names}}")).stdout.split("\n").filter(Boolean).sort()).toEqual(["new", "old"]);
    expect(await docker("wait", "old", "new")).toMatchObject({ code: 0, stdout: "0\n0\n" });
    expect((await docker("logs", "old")).stdout).toBe([1, 2, 3, 4, 5].map((i) => `hello from lua51-app on Lua 5.1 (sandboxed, round ${i})\n`).join(""));
    expect((await docker("logs", "new")).stdout).toBe([1, 2, 3].map((i) => `hello from lua54-app on Lua 5.4 (7 // 2 = 3, a integer; \u2713, round ${i})\n`).join(""));
    await docker("rm", "old", "new");
  });

  it("builds through `hyperlab build` against the same daemon, sharing its cache", async () => {
    const ctx = await context({ Dockerfile: SIX_STEPS, "hello.txt": "via hyperlab\n" });
    const first = await hyperlab(lab.socket, ["build", "-t", "via-hyperlab", ctx]);
    expect(first).toMatchObject({ code: 0, stderr: "" });
    expect(first.stdout).toMatch(/Step 5\/6 : RUN cat hello.txt && echo built > \/built\n ---> Running in [0-9a-f]{12}\nvia hyperlab\n/);
    const viaDocker = await docker("build", "-t", "via-docker", ctx);
    expect(viaDocker.stdout.match(/Using cache/g)).toHaveLength(5);
    expect((await docker("run", "--rm", "via-hyperlab")).stdout).toBe("via hyperlab\n");
    expect((await hyperlab(lab.socket, ["images", "via-hyperlab"])).stdout).toMatch(/^via-hyperlab\s+latest\s+[0-9a-f]{12}/m);
    const failing = await contextDir({ Dockerfile: "FROM busybox\nRUN exit 7\n" });
    dirs.push(failing);
    const failed = await hyperlab(lab.socket, ["build", failing]);
    expect(failed.code).toBe(7);
    expect(failed.stderr).toContain("The command '/bin/sh -c exit 7' returned a non-zero code: 7");
    const usage = await hyperlab(lab.socket, ["build", "--nope", ctx]);
    expect(usage.code).toBe(125);
    expect(usage.stderr).toContain("unknown flag: --nope");
  });
});

describe("hyperlab build without a daemon", () => {
  it("builds in a VM of its own into the default data root's store, where hyperlab run finds it", async () => {
    const home = await mkdtemp(join(tmpdir(), "hyperlab-build-home-"));
    const ctx = await contextDir({ Dockerfile: "FROM lua:5.4\nCOPY main.lua /app/\nCMD [\"lua\", \"/app/main.lua\"]\n", "main.lua": 'print("lua " .. _VERSION)\n' });
    const env = { XDG_DATA_HOME: home };
    const socket = join(home, "no-daemon.sock");
    try {
      const r = await hyperlab(socket, ["build", "-t", "lua-app", ctx], env);
      expect(r).toMatchObject({ code: 0 });
      expect(r.stdout).toContain("Successfully tagged lua-app:latest");
      expect(await hyperlab(socket, ["run", "--rm", "lua-app"], env)).toMatchObject({ code: 0, stdout: "lua Lua 5.4\n" });
    } finally {
      await rm(home, { recursive: true, force: true });
      await rm(ctx, { recursive: true, force: true });
    }
  });
});
