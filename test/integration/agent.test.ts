import { beforeAll, describe, expect, it } from "vitest";
import { AgentClient } from "../../src/guest/agent.ts";
import { FrameReader, MessageType, Tag, encodeFrame, field } from "../../src/guest/protocol.ts";
import type { SerialShell } from "../../src/guest/serial-shell.ts";
import type { Machine } from "../../src/hardware/machine.ts";
import { errorOf, restoredGuest } from "./guest.ts";


describe("the guest agent", () => {
  let machine: Machine;
  let shell: SerialShell;
  let agent: AgentClient;

  beforeAll(async () => {
    ({ machine, shell, agent } = await restoredGuest());
  });

  it("says hello with protocol version 1 and answers a ping", async () => {
    expect(agent.agent.version).toBe(1);
    expect(agent.agent.name).toMatch(/hyperlab-agent/);
    await agent.ping();
  });

  it("is passed over by the OOM killer, and the processes it starts are not", async () => {
    // Its own adjustment, read by a child (an exec), and the child's own: a container's processes are fair game.
    const r = await agent.exec(["/bin/sh", "-c", "cat /proc/$(pidof hyperlab-agent)/oom_score_adj /proc/self/oom_score_adj"]);
    expect(r.stdout).toBe("-999\n0\n");
  });

  it("runs a command with separate stdout and stderr and its exit code", async () => {
    const r = await agent.exec(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r).toEqual({ exitCode: 3, signal: 0, stdout: "out\n", stderr: "err\n" });
  });

  it("passes argv, env and cwd exactly", async () => {
    const r = await agent.exec(["/bin/sh", "-c", 'printf "%s|" "$@"; echo "$GREETING $(pwd)"', "sh", "a b", "", "c"], {
      env: { GREETING: "hello", PATH: "/bin" },
      cwd: "/proc",
    });
    expect(r.stdout).toBe("a b||c|hello /proc\n");
  });

  it("reports the signal that killed a process", async () => {
    const r = await agent.exec(["/bin/sh", "-c", "kill -9 $$"]);
    expect(r.signal).toBe(9);
    expect(r.exitCode).toBe(-1);
  });

  it("answers a signal to a process that has exited with ESRCH at once, not a timeout", async () => {
    const proc = agent.spawn(["/bin/true"]);
    await proc.exited;
    const t0 = performance.now();
    const err = await errorOf(proc.kill(9));
    expect(err).toMatchObject({ code: "AGENT_ERROR", detail: { errno: "ESRCH" } });
    // Well under the agent's 30 s request timeout: the reply was routed to the signal request.
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it("streams stdin to a process and closes it", async () => {
    const r = await agent.exec(["/bin/cat"], { stdin: "line 1\nline 2\n" });
    expect(r.stdout).toBe("line 1\nline 2\n");
    const proc = agent.spawn(["/usr/bin/wc", "-c"], { stdin: true });
    proc.write("12345");
    proc.write("678");
    proc.closeStdin();
    const out: string[] = [];
    proc.onOutput((_s, d) => out.push(new TextDecoder().decode(d)));
    expect(await proc.exited).toEqual({ exitCode: 0, signal: 0 });
    expect(out.join("").trim()).toBe("8");
  });

  it("streams stdin larger than one frame, and files larger than one request", async () => {
    const big = Buffer.from(new Uint8Array(2 * 1024 * 1024 + 7).map((_, i) => (i * 7919) & 0xff));
    const proc = agent.spawn(["/bin/sh", "-c", "cat > /tmp/stdin.bin; wc -c < /tmp/stdin.bin"], { stdin: true });
    proc.write(big);
    proc.closeStdin();
    const out: string[] = [];
    proc.onOutput((_s, d) => out.push(new TextDecoder().decode(d)));
    expect(await proc.exited).toEqual({ exitCode: 0, signal: 0 });
    expect(out.join("").trim()).toBe(String(big.length));
    // (compared as buffers: a deep equality over millions of elements is slow)
    expect(big.equals(await agent.readFile("/tmp/stdin.bin"))).toBe(true);
    await agent.writeFile("/tmp/file.bin", big);
    expect(big.equals(await agent.readFile("/tmp/file.bin"))).toBe(true);
  });

  it("runs a process on a pseudo-terminal of the requested size, and resizes it", async () => {
    const proc = agent.spawn(["/bin/sh", "-c", "tty; stty size; read x; stty size"], { pty: { rows: 30, cols: 100 }, stdin: true });
    let out = "";
    proc.onOutput((stream, d) => {
      expect(stream).toBe(1);
      out += new TextDecoder().decode(d);
    });
    await proc.pid;
    await new Promise((r) => setTimeout(r, 300));
    await proc.resize(40, 120);
    proc.write("go\n");
    await proc.exited;
    expect(out).toMatch(/^\/dev\/pts\/\d+\r\n30 100\r\n/);
    expect(out).toMatch(/40 120\r\n$/);
  });

  it("fails to start a missing program with ENOENT", async () => {
    const err = await errorOf(agent.exec(["/no/such/program"]));
    expect(err.code).toBe("AGENT_ERROR");
    expect(err.detail?.errno).toBe("ENOENT");
    expect(err.message).toMatch(/^exec \/no\/such\/program failed in the guest: .*\(ENOENT\)$/);
  });

  it("serves many requests at once", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => agent.exec(["/bin/sh", "-c", `sleep 0.$((${i} % 3)); echo ${i}`])),
    );
    expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
  });

  it("delivers large output completely and in order before the exit", async () => {
    const r = await agent.exec(["/bin/sh", "-c", "yes 1234567890 | head -n 20000 | cat -n"]);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines.length).toBe(20000);
    expect(lines[0]).toMatch(/^ +1\t1234567890$/);
    expect(lines[19999]).toMatch(/^ +20000\t1234567890$/);
  });

  it("writes, reads and stats files, creating parent directories", async () => {
    const data = new Uint8Array(2_500_000).map((_, i) => (i * 7) & 255);
    await agent.writeFile("/tmp/agent-test/deep/file.bin", data, { mode: 0o600 });
    const back = await agent.readFile("/tmp/agent-test/deep/file.bin");
    expect(back.length).toBe(data.length);
    expect(Buffer.compare(Buffer.from(back), Buffer.from(data))).toBe(0);
    const st = await agent.stat("/tmp/agent-test/deep/file.bin");
    expect(st.size).toBe(2_500_000);
    expect(st.mode & 0o777).toBe(0o600);
    expect((await agent.stat("/tmp/agent-test/deep")).isDirectory).toBe(true);
    await agent.writeFile("/tmp/agent-test/log", "a\n");
    await agent.writeFile("/tmp/agent-test/log", "b\n", { append: true });
    expect(new TextDecoder().decode(await agent.readFile("/tmp/agent-test/log"))).toBe("a\nb\n");
    const missing = await errorOf(agent.readFile("/tmp/agent-test/none"));
    expect(missing.detail?.errno).toBe("ENOENT");
  });

  it("makes directories, mounts and unmounts, and removes trees without starting a process", async () => {
    await agent.mkdir("/tmp/ops/a/b");
    await agent.mkdir("/tmp/ops/a/b"); // existing is fine, as with mkdir -p
    await agent.mount({ target: "/tmp/ops/a/b", source: "tmpfs", fstype: "tmpfs", options: "size=1m" });
    await agent.writeFile("/tmp/ops/a/b/inside", "x");
    const mounts = new TextDecoder().decode(await agent.readFile("/proc/mounts"));
    expect(mounts).toMatch(/^tmpfs \/tmp\/ops\/a\/b tmpfs .*size=1024k/m);
    // A recursive remove stays on its own filesystem: it leaves the mount, so its parent is not empty.
    const busy = await errorOf(agent.remove("/tmp/ops", { recursive: true }));
    expect(busy.detail?.errno).toBe("ENOTEMPTY");
    expect((await agent.stat("/tmp/ops/a/b/inside")).size).toBe(1);
    await agent.umount("/tmp/ops/a/b");
    await agent.remove("/tmp/ops", { recursive: true });
    expect((await errorOf(agent.stat("/tmp/ops"))).detail?.errno).toBe("ENOENT");
    expect((await errorOf(agent.remove("/tmp/ops"))).detail?.errno).toBe("ENOENT");
    const bad = await errorOf(agent.mount({ target: "/tmp", fstype: "nosuchfs" }));
    expect(bad.message).toMatch(/mount nosuchfs on \/tmp: No such device \(ENODEV\)/);
    expect((await agent.exec(["/bin/true"])).exitCode).toBe(0);
  });

  it("answers malformed and oversized frames with an error and keeps serving", async () => {
    const reader = new FrameReader();
    const replies: Array<{ type: number; id: number; code?: string }> = [];
    const off = machine.onControl((b) => {
      for (const f of reader.push(b)) replies.push({ type: f.type, id: f.id, code: field.str(f, Tag.CODE) });
    });
    const oversized = encodeFrame(MessageType.PING, 9001);
    new DataView(oversized.buffer).setUint32(8, 2_000_000, true);
    machine.writeControl(new Uint8Array([...new TextEncoder().encode("garbage!"), ...oversized]));
    machine.writeControl(new Uint8Array(2_000_000)); // the payload the header promised
    const overrun = encodeFrame(MessageType.PING, 9002, [[Tag.DATA, "abcd"]]);
    new DataView(overrun.buffer).setUint32(14, 400, true);
    machine.writeControl(overrun);
    machine.writeControl(encodeFrame(0x7777, 9003));
    await agent.ping();
    off();
    expect(replies).toContainEqual({ type: MessageType.ERROR, id: 9001, code: "E2BIG" });
    expect(replies).toContainEqual({ type: MessageType.ERROR, id: 9002, code: "EPROTO" });
    expect(replies).toContainEqual({ type: MessageType.ERROR, id: 9003, code: "ENOSYS" });
  });

  it("times out on a silent agent with AGENT_TIMEOUT naming the request", async () => {
    await shell.exec("kill -STOP $(pidof hyperlab-agent)");
    try {
      const err = await errorOf(agent.ping({ timeoutMs: 500 }));
      expect(err.code).toBe("AGENT_TIMEOUT");
      expect(err.message).toBe("no answer from the guest agent within 500 ms while waiting for the agent to answer: ping");
    } finally {
      await shell.exec("kill -CONT $(pidof hyperlab-agent)");
    }
    await agent.ping();
  });

  it("fails a request in flight with AGENT_GONE when the agent is killed, then serves again", async () => {
    const running = agent.exec(["/bin/cat"], { stdin: true });
    await new Promise((r) => setTimeout(r, 300));
    await shell.exec("kill -9 $(pidof hyperlab-agent)");
    const err = await errorOf(running);
    expect(err.code).toBe("AGENT_GONE");
    expect(err.message).toMatch(/the guest agent restarted/);
    const r = await agent.exec(["/bin/echo", "back"]);
    expect(r.stdout).toBe("back\n");
  });

  it("fails everything with AGENT_GONE once the machine stops", async () => {
    const running = agent.exec(["/bin/cat"], { stdin: true });
    await new Promise((r) => setTimeout(r, 200));
    await machine.stop();
    expect((await errorOf(running)).code).toBe("AGENT_GONE");
    expect((await errorOf(agent.ping())).code).toBe("AGENT_GONE");
  });
});
