// A client that stops reading a stream while the container keeps printing
// (found by the soak, bench/soak.ts): the daemon queued everything for it,
// 184 MiB in 40 s for one `docker attach` that never read. Now a client more
// than 4 MiB behind for 10 s is let go (src/daemon/stuck-client.ts), while
// the container, its other readers and every other client go on.
import { type Socket, connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

/** Sends a raw HTTP request on a new connection and reads nothing of the answer: a stuck client. */
function stuckRequest(lab: DockerLab, head: string, body = ""): Socket {
  const s = connect(lab.socket);
  s.pause();
  s.on("error", () => {});
  s.write(`${head}\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  return s;
}

/** Reads what is left for `s` for up to `ms`: the bytes, and whether the daemon had ended the connection. */
function readRest(s: Socket, ms: number): Promise<{ bytes: number; ended: boolean }> {
  return new Promise((resolve) => {
    let bytes = 0;
    s.on("data", (d: Buffer) => (bytes += d.length));
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ bytes, ended: false });
    }, ms);
    s.once("end", () => {
      clearTimeout(timer);
      resolve({ bytes, ended: true });
    });
    s.resume();
  });
}

describe("a client that never reads its stream", () => {
  let lab: DockerLab;
  const docker = (...args: string[]) => lab.docker(args);

  beforeAll(async () => {
    lab = await dockerLab();
    // Megabytes a second, for as long as it runs.
    expect((await docker("run", "-d", "--name", "loud", "busybox", "sh", "-c", "while :; do cat /bin/busybox; done")).code).toBe(0);
  });
  afterAll(async () => {
    await lab?.close();
  });

  it(
    "is let go by the daemon, while the container and the other clients go on",
    async () => {
      const attach = stuckRequest(lab, "POST /v1.41/containers/loud/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp");
      const v1Exec = stuckRequest(lab, "POST /v1/containers/loud/exec HTTP/1.1", JSON.stringify({ argv: ["sh", "-c", "while :; do cat /bin/busybox; done"] }));
      const follow = stuckRequest(lab, "GET /v1.41/containers/loud/logs?follow=1&stdout=1 HTTP/1.1");
      await new Promise((r) => setTimeout(r, 25_000));
      // Meanwhile everyone else is answered, and the container runs on.
      const ps = await docker("ps", "--filter", "name=loud", "--format", "{{.Status}}");
      expect(ps.stdout).toMatch(/^Up /);
      for (const [name, s] of Object.entries({ attach, v1Exec, follow })) {
        const rest = await readRest(s, 5000);
        // Before, the whole output since it attached waited for it in the daemon (and more kept coming).
        expect(rest.ended, `${name}: the daemon still held its connection with ${rest.bytes} bytes for it`).toBe(true);
        expect(rest.bytes, name).toBeLessThan(16 * 1024 * 1024);
      }
      expect((await docker("logs", "--tail", "1", "loud")).code).toBe(0);
    },
    120_000,
  );
});
