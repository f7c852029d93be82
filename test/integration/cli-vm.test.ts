// `hyperlab vm ...` and `hyperlab stats` against a real daemon and real guests.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, hyperlab, startDaemon } from "./daemon-process.ts";

const BUDGET = 1024;

describe("hyperlab vm and stats through the daemon", () => {
  let dir: string;
  let socket: string;
  let daemon: DaemonProcess;

  const hl = (args: string[], env: Record<string, string> = {}) => hyperlab(socket, args, env);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperlab-vm-"));
    socket = join(dir, "hyperlab.sock");
    daemon = await startDaemon(socket, ["--memory-budget", String(BUDGET), "--warm-pool", "1"], 90_000);
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates VMs, lists them, and keeps their files and processes apart", async () => {
    expect(await hl(["vm", "create", "--name", "a"])).toMatchObject({ code: 0, stdout: "a\n" });
    expect(await hl(["vm", "create", "--name", "b", "--cpu-share", "2"])).toMatchObject({ code: 0, stdout: "b\n" });

    const ls = await hl(["vm", "ls"]);
    const lines = ls.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+VM ID\s+STATE\s+PROFILE\s+MEMORY\s+CPU SHARE\s+STARTED FROM\s+NETWORK\s+CREATED$/);
    expect(ls.stdout).toMatch(/^a\s+[0-9a-f]{12}\s+running\s+default\s+128 MiB\s+1\s+(pool|snapshot)\s+/m);
    expect(ls.stdout).toMatch(/^b\s+[0-9a-f]{12}\s+running\s+default\s+128 MiB\s+2\s+(pool|snapshot)\s+/m);

    expect(await hl(["vm", "exec", "a", "sh", "-c", "echo mine > /root/a.txt; sleep 999 </dev/null >/dev/null 2>&1 & exit 3"])).toMatchObject({ code: 3 });
    expect(await hl(["vm", "exec", "a", "cat", "/root/a.txt"])).toMatchObject({ code: 0, stdout: "mine\n" });
    const inB = await hl(["vm", "exec", "b", "cat", "/root/a.txt"]);
    expect(inB.code).toBe(1);
    expect(inB.stderr).toContain("No such file or directory");
    expect((await hl(["vm", "exec", "a", "ps", "-o", "args"])).stdout).toContain("sleep 999");
    expect((await hl(["vm", "exec", "b", "ps", "-o", "args"])).stdout).not.toContain("sleep 999");
  });

  it("pauses and resumes a VM, refusing exec while it is paused", async () => {
    expect(await hl(["vm", "pause", "a"])).toMatchObject({ code: 0, stdout: "a\n" });
    expect((await hl(["vm", "ls"])).stdout).toMatch(/^a\s+\S+\s+paused\s/m);
    const refused = await hl(["vm", "exec", "a", "true"]);
    expect(refused.code).toBe(125);
    expect(refused.stderr).toBe("hyperlab: error: cannot exec: VM a is paused (exec is legal while running) [VM_INVALID_STATE]\n");
    const again = await hl(["vm", "pause", "a"]);
    expect(again.stderr).toContain("cannot pause: VM a is paused (pause is legal while running)");
    expect(await hl(["vm", "resume", "a"])).toMatchObject({ code: 0, stdout: "a\n" });
    expect(await hl(["vm", "exec", "a", "echo", "awake"])).toMatchObject({ code: 0, stdout: "awake\n" });
  });

  it("snapshots a VM to a file and restores it with the file written before", async () => {
    const file = join(dir, "a.hlsnap");
    const snap = await hl(["vm", "snapshot", "a", file]);
    expect(snap.code).toBe(0);
    // A VM from the boot snapshot: only what changed since it (tens of kB).
    expect(snap.stdout).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(\\d+(\\.\\d+)?kB, \\d+ pages changed since the boot snapshot\\)\\n$`));
    const whole = await hl(["vm", "snapshot", "a", join(dir, "a-whole.hlsnap"), "--full"]);
    expect(whole.stdout).toMatch(/ \(\d+(\.\d+)?MB\)\n$/);
    expect(existsSync(file)).toBe(true);
    expect(await hl(["vm", "restore", file, "--name", "c"])).toMatchObject({ code: 0, stdout: "c\n" });
    expect(await hl(["vm", "exec", "c", "cat", "/root/a.txt"])).toMatchObject({ code: 0, stdout: "mine\n" });
    expect((await hl(["vm", "ls"])).stdout).toMatch(/^c\s+\S+\s+running\s+default\s+128 MiB\s+1\s+restore\s/m);
  });

  it("refuses a damaged snapshot file with SNAPSHOT_CORRUPT", async () => {
    const bad = join(dir, "bad.hlsnap");
    await import("node:fs/promises").then((fs) => fs.writeFile(bad, "not a snapshot"));
    const r = await hl(["vm", "restore", bad]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/the snapshot is damaged: .*\[SNAPSHOT_CORRUPT\]/);
  });

  it("forks a VM into independent copies", async () => {
    const fork = await hl(["vm", "fork", "a", "-n", "2"]);
    expect(fork.code).toBe(0);
    const [f1, f2] = fork.stdout.trim().split("\n");
    expect(f1).toMatch(/^a-fork-\d+$/);
    expect(f2).toMatch(/^a-fork-\d+$/);
    expect(await hl(["vm", "exec", f1!, "sh", "-c", "echo changed > /root/a.txt"])).toMatchObject({ code: 0 });
    expect(await hl(["vm", "exec", f2!, "cat", "/root/a.txt"])).toMatchObject({ stdout: "mine\n" });
    expect(await hl(["vm", "exec", "a", "cat", "/root/a.txt"])).toMatchObject({ stdout: "mine\n" });
    expect(await hl(["vm", "exec", f1!, "cat", "/root/a.txt"])).toMatchObject({ stdout: "changed\n" });
    expect(await hl(["vm", "rm", f1!, f2!])).toMatchObject({ code: 0 });
    // Six CLI processes and two restores: on a loaded 2-core machine this alone has taken over a minute.
  }, 150_000);

  it("shows the budget and each VM's allocation and use", async () => {
    const s = await hl(["stats"]);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(new RegExp(`^memory budget: \\d+ MiB of ${BUDGET} MiB reserved \\(\\d+ MiB free; warm pool \\d+ MiB\\)$`, "m"));
    expect(s.stdout).toMatch(/^VM\s+STATE\s+CPU SHARE\s+INSTR\/S\s+INSTRUCTIONS\s+MEM ALLOCATED\s+MEM USED \(GUEST\)\s+CONSOLE \/ AGENT BYTES$/m);
    expect(s.stdout).toMatch(/^b\s+running\s+2\s+[\d.]+M\s+\d+M\s+128 MiB\s+[\d.]+ MiB\s+\S+ \/ \S+$/m);
    expect(s.stdout).toMatch(/^pages shareable across VMs: [\d,]+ of [\d,]+ \([\d.]+ MiB; \d+ VMs: [^)]*\bb\b[^)]*\)$/m);
    expect(s.stdout).toMatch(/^identical pages \(what KSM would merge\): [\d,]+, [\d,]+ of them zero; merging frees [\d,]+ pages \([\d.]+ MiB\)$/m);
  });

  it("refuses a VM the budget cannot hold, stating asked and free", async () => {
    const r = await hl(["vm", "create", "--memory", String(BUDGET)]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(new RegExp(`it asks for ${BUDGET} MiB of memory but only \\d+ MiB of the host budget \\(${BUDGET} MiB\\) is free.*\\[RESOURCE_EXHAUSTED\\]`));
  });

  it("removes VMs and returns their memory", async () => {
    expect(await hl(["vm", "rm", "a", "b", "c"])).toMatchObject({ code: 0, stdout: "a\nb\nc\n" });
    // The daemon's own VM, which hosts its containers, is all that is left.
    const left = (await hl(["vm", "ls"])).stdout.trim().split("\n");
    expect(left).toHaveLength(2);
    expect(left[1]).toMatch(/^default\s+\S+\s+running\s/);
    const missing = await hl(["vm", "pause", "a"]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("no VM named or with id 'a'");
    expect(missing.stderr).toContain("[VM_NOT_FOUND]");
    expect((await hl(["stats"])).stdout).toMatch(/^memory budget: \d+ MiB of 1024 MiB reserved/m);
  });

  it("names the missing daemon", async () => {
    const r = await hl(["vm", "ls"], { HYPERLAB_SOCKET: join(dir, "nobody.sock") });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/'hyperlab vm ls' needs a running daemon .*Start one with 'hyperlab daemon &'/);
  });
});
