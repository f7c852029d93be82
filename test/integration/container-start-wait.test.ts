// How long `docker start` waits for a container's runtime (found by the
// soak, bench/soak.ts): a fixed 30 s failed starts of a guest that was busy
// with other containers' starts on a loaded host, though nothing hung. Now
// the wait gives up once the guest's CPU has been idle for 30 s of it (a
// runtime that hangs), and not while the guest is busy (one that is slow).
// The runtime is held in the guest by a wrapper bound over /usr/bin/crun
// that waits for a file to go, spinning (busy) or sleeping (hung).
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DockerLab, dockerLab } from "./docker-cli.ts";

/** Runs `sh -c script` in VM default through /v1 and returns its exit status and output. */
function guest(lab: DockerLab, script: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ argv: ["sh", "-c", script] });
    const req = request({ socketPath: lab.socket, method: "POST", path: "/v1/vms/default/exec", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`exec in the guest: ${res.statusCode} ${text}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A crun that waits while /tmp/hold exists, spinning (`:`) or sleeping, then runs the real one. */
const wrapper = (wait: ":" | "sleep 1") => `#!/bin/sh\nwhile [ -e /tmp/hold ]; do ${wait}; done\nexec /tmp/crun.real "$@"\n`;

describe("a container start waiting for its runtime", () => {
  let lab: DockerLab;
  const docker = (...args: string[]) => lab.docker(args);

  beforeAll(async () => {
    lab = await dockerLab();
    // busybox's layer in place, so the starts below spend their time in the runtime only.
    expect((await docker("run", "--rm", "busybox", "true")).code).toBe(0);
    expect((await guest(lab, "cp /usr/bin/crun /tmp/crun.real")).exitCode).toBe(0);
  });
  afterAll(async () => {
    await lab?.close();
  });

  const hold = async (wait: ":" | "sleep 1") => {
    const r = await guest(lab, `umount /usr/bin/crun 2>/dev/null; umount /usr/bin/crun 2>/dev/null; printf '${wrapper(wait).replace(/\n/g, "\\n")}' > /tmp/crun.wrap && chmod 755 /tmp/crun.wrap && touch /tmp/hold && mount --bind /tmp/crun.wrap /usr/bin/crun`);
    expect(r, r.stderr).toMatchObject({ exitCode: 0 });
  };

  it(
    "goes on past 30 s while the guest is busy, and the container starts",
    async () => {
      await hold(":");
      const t0 = Date.now();
      const started = docker("run", "-d", "--name", "slow", "busybox", "sleep", "1000");
      // Released after 40 s of a busy guest: before, the start had failed at 30 s.
      await new Promise((r) => setTimeout(r, 40_000));
      expect((await guest(lab, "rm /tmp/hold")).exitCode).toBe(0);
      const r = await started;
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(Date.now() - t0).toBeGreaterThan(40_000);
      expect((await docker("inspect", "-f", "{{.State.Running}}", "slow")).stdout.trim()).toBe("true");
    },
    150_000,
  );

  it(
    "gives up once the guest has been idle for 30 s of it, saying so",
    async () => {
      await hold("sleep 1");
      const r = await docker("run", "-d", "--name", "hung", "busybox", "sleep", "1000");
      await guest(lab, "rm -f /tmp/hold");
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/container hung did not start within \d+ s, \d+ s of which the guest's CPU was idle \(waited for the runtime's poststart hook\)/);
    },
    150_000,
  );
});
