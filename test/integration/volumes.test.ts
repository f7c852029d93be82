// Volumes and host directories (docker -v, --mount; hyperlab run -v,
// hyperlab volume) through a real daemon: a host directory is served to the
// guest over 9p and bind-mounted into the container, so a change on either
// side is seen on the other at once; :ro is enforced; a container cannot
// reach past what was shared; volumes are shared, outlive their containers
// and the daemon, and cannot be removed while used.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";
import { type DaemonProcess, hyperlab, startDaemon } from "./daemon-process.ts";

const BIN = fileURLToPath(new URL("../../bin/hyperlab.js", import.meta.url));

describe("volumes and host directories", () => {
  let lab: DockerLab;
  let restarted: DaemonProcess | undefined;
  let share: string;
  const docker = (...args: string[]) => lab.docker(args);
  const hl = (...args: string[]) => hyperlab(lab.socket, args);

  beforeAll(async () => {
    lab = await dockerLab();
    share = join(lab.dir, "share");
    mkdirSync(share);
  });
  afterAll(async () => {
    await restarted?.stop();
    await lab?.close();
  });

  it("shows a host file in the container and a container's file on the host, both ways while it runs", async () => {
    writeFileSync(join(share, "from-host.txt"), "written on the host\n");
    const run = await docker("run", "-d", "--name", "both", "-v", `${share}:/app`, "busybox", "sleep", "300");
    expect(run.code).toBe(0);
    expect(await docker("exec", "both", "cat", "/app/from-host.txt")).toMatchObject({ code: 0, stdout: "written on the host\n" });
    expect((await docker("exec", "both", "sh", "-c", "echo written in the container > /app/from-ctr.txt")).code).toBe(0);
    expect(readFileSync(join(share, "from-ctr.txt"), "utf8")).toBe("written in the container\n");
    // Changed on the host while the container runs: the next read sees it (no cache in the guest).
    writeFileSync(join(share, "from-host.txt"), "changed on the host\n");
    expect((await docker("exec", "both", "cat", "/app/from-host.txt")).stdout).toBe("changed on the host\n");
    expect((await docker("exec", "both", "sh", "-c", "mkdir /app/dir && echo x > /app/dir/y && rm /app/from-ctr.txt")).code).toBe(0);
    expect(readdirSync(share).sort()).toEqual(["dir", "from-host.txt"]);
    const mounts = JSON.parse((await docker("inspect", "--format", "{{json .Mounts}}", "both")).stdout);
    expect(mounts).toEqual([{ Type: "bind", Source: share, Destination: "/app", Mode: "", RW: true, Propagation: "rprivate" }]);
    await docker("rm", "-f", "both");
  });

  it("refuses writes through :ro and --mount readonly, and still reads", async () => {
    const ro = await docker("run", "--rm", "-v", `${share}:/app:ro`, "busybox", "sh", "-c", "cat /app/from-host.txt; echo x > /app/new.txt");
    expect(ro.code).toBe(1);
    expect(ro.stdout).toBe("changed on the host\n");
    expect(ro.stderr).toContain("Read-only file system");
    const mount = await docker("run", "--rm", "--mount", `type=bind,source=${share},target=/app,readonly`, "busybox", "rm", "/app/from-host.txt");
    expect(mount.code).toBe(1);
    expect(mount.stderr).toContain("Read-only file system");
    expect(existsSync(join(share, "new.txt"))).toBe(false);
    expect(existsSync(join(share, "from-host.txt"))).toBe(true);
  });

  it("reaches nothing past the shared directory: '..', absolute and relative symlinks lead into the container's own files", async () => {
    writeFileSync(join(lab.dir, "host-secret"), "only on the host\n");
    symlinkSync(join(lab.dir, "host-secret"), join(share, "abs-link"));
    symlinkSync("../host-secret", join(share, "rel-link"));
    symlinkSync("/", join(share, "root-link"));
    const r = await docker(
      "run", "--rm", "-v", `${share}:/app`, "busybox", "sh", "-c",
      "cat /app/abs-link; cat /app/rel-link; ls /app/root-link/ | tr '\\n' ' '; echo; ls /app/.. | tr '\\n' ' '; echo; cat /app/../../host-secret",
    );
    expect(r.stdout).not.toContain("only on the host");
    expect(r.stderr).toContain("can't open '/app/abs-link': No such file or directory");
    expect(r.stderr).toContain("can't open '/app/rel-link': No such file or directory");
    // The container's own root, twice: busybox's tree, not the host's.
    const [rootLink, parent] = r.stdout.split("\n");
    expect(rootLink).toContain("bin");
    expect(parent).toBe(rootLink);
    // A hard link in the container stays in the share; a rename from one share to another is a copy (EXDEV).
    const other = join(lab.dir, "other");
    mkdirSync(other);
    const moves = await docker("run", "--rm", "-v", `${share}:/a`, "-v", `${other}:/b`, "busybox", "sh", "-c", "ln /a/from-host.txt /a/hard && mv /a/hard /b/moved && ls /a /b");
    expect(moves.code).toBe(0);
    expect(readFileSync(join(other, "moved"), "utf8")).toBe("changed on the host\n");
    expect(readdirSync(lab.dir).filter((n) => !["data", "docker-config", "hyperlab.sock", "share", "other", "host-secret"].includes(n))).toEqual([]);
  });

  it("makes a missing host directory for -v but not for --mount type=bind (as dockerd)", async () => {
    const made = join(lab.dir, "made-by-v");
    expect((await docker("run", "--rm", "-v", `${made}:/x`, "busybox", "true")).code).toBe(0);
    expect(existsSync(made)).toBe(true);
    const missing = join(lab.dir, "missing");
    const r = await docker("run", "--rm", "--mount", `type=bind,source=${missing},target=/x`, "busybox", "true");
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`invalid mount config for type "bind": bind source path does not exist: ${missing}`);
    expect(existsSync(missing)).toBe(false);
  });

  it("shares a volume between two containers, keeps it after both are gone, and refuses to remove it while used (409)", async () => {
    expect((await docker("volume", "create", "shared")).stdout).toBe("shared\n");
    expect((await docker("run", "-d", "--name", "writer", "-v", "shared:/data", "busybox", "sh", "-c", "echo kept > /data/f; sleep 300")).code).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    expect(await docker("run", "--rm", "--name", "reader", "--mount", "type=volume,source=shared,target=/d,readonly", "busybox", "cat", "/d/f")).toMatchObject({ code: 0, stdout: "kept\n" });
    const id = (await docker("inspect", "--format", "{{.Id}}", "writer")).stdout.trim();
    const busy = await docker("volume", "rm", "shared");
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain(`remove shared: volume is in use - [${id}]`);
    const viaHyperlab = await hl("volume", "rm", "shared");
    expect(viaHyperlab.code).toBe(125);
    expect(viaHyperlab.stderr).toContain("cannot remove volume shared: it is in use by writer");
    expect((await docker("rm", "-f", "writer")).code).toBe(0);
    const vol = JSON.parse((await docker("volume", "inspect", "shared")).stdout)[0];
    expect(vol).toMatchObject({ Name: "shared", Driver: "local", Scope: "local" });
    expect(readFileSync(join(vol.Mountpoint, "f"), "utf8")).toBe("kept\n");
  });

  it("keeps volumes across a daemon restart", async () => {
    await lab.daemon.stop();
    restarted = await startDaemon(lab.socket, ["--warm-pool", "0", "--data-root", join(lab.dir, "data")]);
    expect((await docker("volume", "ls", "--format", "{{.Name}}")).stdout).toContain("shared\n");
    expect(await docker("run", "--rm", "-v", "shared:/data", "busybox", "cat", "/data/f")).toMatchObject({ code: 0, stdout: "kept\n" });
    expect((await docker("volume", "rm", "shared")).code).toBe(0);
    expect((await docker("volume", "inspect", "shared")).stderr).toContain("get shared: no such volume");
  });

  it("makes anonymous volumes for -v /path, removed by rm -v and by run --rm", async () => {
    const c = (await docker("create", "-v", "/scratch", "busybox", "true")).stdout.trim();
    const name = JSON.parse((await docker("inspect", "--format", "{{json .Mounts}}", c)).stdout)[0].Name as string;
    expect(name).toMatch(/^[0-9a-f]{64}$/);
    expect((await docker("volume", "ls", "-q")).stdout).toContain(name);
    await docker("rm", "-v", c);
    expect((await docker("volume", "ls", "-q")).stdout).not.toContain(name);
    const before = (await docker("volume", "ls", "-q")).stdout;
    expect((await docker("run", "--rm", "-v", "/tmp-data", "busybox", "true")).code).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    expect((await docker("volume", "ls", "-q")).stdout).toBe(before);
  });

  it("lists volumes in system df and prunes unused ones", async () => {
    await docker("volume", "create", "keepme");
    await docker("run", "--rm", "-v", "keepme:/v", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /v/blob");
    const df = await docker("system", "df", "-v", "--format", "{{json .Volumes}}");
    const vols = JSON.parse(df.stdout) as Array<{ Name: string; Size: string; Links: number }>;
    expect(vols.find((v) => v.Name === "keepme")).toMatchObject({ Size: "5kB", Links: "0" });
    await docker("create", "-v", "/anon", "busybox", "true").then((r) => docker("rm", r.stdout.trim()));
    const pruned = await docker("volume", "prune", "-f");
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).not.toContain("keepme");
    expect((await docker("volume", "prune", "-a", "-f")).stdout).toContain("keepme");
    expect((await docker("volume", "ls", "-q")).stdout).toBe("");
  });

  it("hyperlab run -v and hyperlab volume: relative host paths, named volumes, ls and inspect", async () => {
    // The relative path is the caller's: run from the lab's folder.
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [BIN, "run", "--rm", "-v", "./share:/app", "-v", "hlvol:/v", "busybox", "sh", "-c", "cat /app/from-host.txt && echo saved > /v/x"],
        { cwd: lab.dir, env: { ...process.env, HYPERLAB_SOCKET: lab.socket }, timeout: 120_000 },
        (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(r.stderr).toBe("");
    expect(r).toMatchObject({ code: 0, stdout: "changed on the host\n" });
    const ls = await hl("volume", "ls");
    expect(ls.stdout).toMatch(/^VOLUME NAME\s+CONTAINERS\s+MOUNTPOINT\nhlvol\s+0\s+\//);
    const [v] = JSON.parse((await hl("volume", "inspect", "hlvol")).stdout);
    expect(v).toMatchObject({ name: "hlvol", usedBy: [], size: 6 });
    expect((await hl("volume", "rm", "hlvol")).stdout).toBe("hlvol\n");
  }, 120_000);

  it("names the wrong part of a malformed -v or --mount and shows the forms that work", async () => {
    const cases: Array<[string[], string]> = [
      [["-v", "a:b:c:d"], "invalid volume specification: 'a:b:c:d': it has 4 parts separated by ':', at most 3 go; use -v NAME:/path[:ro]"],
      [["-v", `${share}:/x:zz`], "invalid mode: zz"],
      [["-v", `${share}:relative`], "invalid mount path: 'relative' mount path must be absolute"],
      [["-v", "bad/name:/x"], 'includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed'],
      [["--mount", "type=volume,target=/x,foo=bar"], "unexpected key 'foo' in 'foo=bar'"],
      [["--mount", "type=bind,source=relative,target=/x"], "invalid mount path: 'relative' mount path must be absolute"],
    ];
    for (const [flags, words] of cases) {
      const viaDocker = await docker("run", "--rm", ...flags, "busybox", "true");
      const viaHyperlab = await hl("run", "--rm", ...flags, "busybox", "true");
      // The docker CLI checks some itself (in its own words); what reaches the daemon gets ours.
      expect(viaDocker.code, flags.join(" ")).toBe(125);
      expect(viaHyperlab.code, flags.join(" ")).toBe(125);
      expect(viaHyperlab.stderr, flags.join(" ")).toContain(words);
    }
    expect((await hl("run", "--rm", "-v", "a:b:c:d", "busybox", "true")).stderr).toContain("-v /host/dir:/path[:ro] (a host directory) or -v /path");
    expect((await hl("run", "--rm", "--mount", "type=bind,source=/tmp", "busybox", "true")).stderr).toContain(
      "target is required; use --mount type=volume,source=NAME,target=/path[,readonly] or --mount type=bind,source=/host/dir,target=/path[,readonly]",
    );
  });
});
