import { type Server, connect, createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { PortBinding } from "../../../src/containers/ports.ts";
import { bindError, nodePortPublisher } from "../../../src/daemon/port-relay.ts";
import type { GuestStream } from "../../../src/guest/agent.ts";
import { StreamEnd } from "../../../src/guest/agent-stream.ts";

/** A guest that answers every connection by upper-casing what it reads, until the client half-closes. */
function upperCaseGuest(opened: Array<{ host: string; port: number }>) {
  return {
    connect: async (target: { host: string; port: number } | { path: string }): Promise<GuestStream> => {
      if ("path" in target) throw new Error("no unix sockets here");
      opened.push(target);
      let guest!: StreamEnd;
      const host: StreamEnd = new StreamEnd(1, { data: (d) => guest.receiveData(d), eof: () => guest.receiveEof(), close: () => guest.receiveClose(), grant: (n) => guest.receiveCredit(n) }, { credit: 65536 });
      guest = new StreamEnd(1, { data: (d) => host.receiveData(d), eof: () => host.receiveEof(), close: () => host.receiveClose(), grant: (n) => host.receiveCredit(n) }, { credit: 65536 });
      guest.onData((d) => guest.write(new TextEncoder().encode(new TextDecoder().decode(d).toUpperCase())));
      guest.onEnd(() => {
        guest.end();
        host.receiveClose();
        guest.receiveClose();
      });
      return host;
    },
  };
}

const binding = (hostPort: number, containerPort = 80): PortBinding => ({ hostIp: "", hostPort, containerPort, protocol: "tcp" });

function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => s.end(text));
    let got = "";
    s.on("data", (d: Buffer) => (got += d.toString()));
    s.on("end", () => resolve(got));
    s.on("error", reject);
  });
}

describe("the Node port relay", () => {
  const servers: Server[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));

  it("relays a connection to the container's address and port, half-close kept, and closes with unpublish", async () => {
    const opened: Array<{ host: string; port: number }> = [];
    const relay = nodePortPublisher(upperCaseGuest(opened));
    const [p] = await relay.publish({ containerId: "c1", containerName: "web", ipAddress: "10.88.0.2", bindings: [binding(0, 8000)] });
    expect(p).toMatchObject({ hostIp: "127.0.0.1", containerPort: 8000, protocol: "tcp" });
    expect(await exchange(p!.hostPort, "hello")).toBe("HELLO");
    expect(opened).toEqual([{ host: "10.88.0.2", port: 8000 }]);
    relay.unpublish("c1");
    await expect(exchange(p!.hostPort, "x")).rejects.toThrow(/ECONNREFUSED/);
  });

  it("refuses a port in use, naming it, and leaves none of the container's other ports open", async () => {
    const taken = createServer();
    servers.push(taken);
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    const port = (taken.address() as { port: number }).port;
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, "127.0.0.1", () => r()));
    const freePort = (free.address() as { port: number }).port;
    await new Promise((r) => free.close(r));
    const relay = nodePortPublisher(upperCaseGuest([]));
    await expect(relay.publish({ containerId: "c2", containerName: "web", ipAddress: "10.88.0.3", bindings: [binding(freePort), binding(port, 81)] })).rejects.toThrow(
      `cannot publish port ${port} for container web: Bind for 127.0.0.1:${port} failed: port is already allocated`,
    );
    // The first binding was opened, then closed again when the second failed.
    await expect(exchange(freePort, "x")).rejects.toThrow(/ECONNREFUSED/);
  });

  it("says what a port below 1024 needs, and what an address not of this machine is", () => {
    const denied = bindError(Object.assign(new Error("listen EACCES"), { code: "EACCES" }), "127.0.0.1", 80, "web");
    expect(denied.code).toBe("PORT_UNAVAILABLE");
    expect(denied.message).toBe(
      "cannot publish port 80 for container web: Bind for 127.0.0.1:80 failed: permission denied: host ports below 1024 need root or CAP_NET_BIND_SERVICE for the daemon (or a lower net.ipv4.ip_unprivileged_port_start); publish on a port from 1024 up, e.g. -p 8080:80",
    );
    expect(bindError(Object.assign(new Error("x"), { code: "EADDRNOTAVAIL" }), "10.9.9.9", 8080, "web").message).toContain("10.9.9.9 is not an address of this machine");
  });

  it("closes the client's connection when nothing listens in the container", async () => {
    const errors: string[] = [];
    const relay = nodePortPublisher({ connect: async () => Promise.reject(new Error("ECONNREFUSED")) }, { onConnectError: (e) => errors.push(e.message) });
    const [p] = await relay.publish({ containerId: "c3", containerName: "web", ipAddress: "10.88.0.4", bindings: [binding(0)] });
    expect(await exchange(p!.hostPort, "x").catch((e: Error) => e.message)).toMatch(/^$|ECONNRESET/);
    expect(errors).toEqual(["Error: ECONNREFUSED"]);
    relay.unpublish("c3");
  });
});
