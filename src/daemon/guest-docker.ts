// `docker` inside the daemon's VMs. Every VM that runs gets, through its
// guest agent, a listening /var/run/docker.sock whose connections the daemon
// serves with its Docker API scoped to that VM (so `docker ps` in VM b lists
// b's containers), and the tools socket through which the guest's
// /usr/bin/docker stub fetches the real docker client on first use.
//
// A connection from the guest is a GuestStream, not a Node socket: it is
// wrapped as a Duplex and handed to a Node http server with
// `emit("connection")`, so node.ts serves it exactly as it serves the
// daemon's own socket, upgrades (attach, exec) included.
import { type Server, createServer } from "node:http";
import { Duplex } from "node:stream";
import type { VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import type { GuestStream } from "../guest/agent.ts";
import { serveGuestTools } from "../guest/guest-tools.ts";
import { loadNodeTool } from "../hardware/node.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Vm } from "../hypervisor/vm.ts";
import { DockerApi } from "./docker/api.ts";
import { serveDockerRequest, serveDockerUpgrade } from "./docker/node.ts";
import { dockerRoutes } from "./docker/routes.ts";

/** Where a guest's docker client finds the daemon (its default DOCKER_HOST). */
export const GUEST_DOCKER_SOCKET = "/var/run/docker.sock";

/** The guest side of docker for every running VM. */
export interface GuestDocker {
  /** stops setting it up for VMs that start from now on (the VMs' own go with them) */
  close(): void;
}

/**
 * A guest stream as a Node Duplex: bytes both ways with back-pressure (a
 * full window holds Node's writes; a full Node buffer pauses the stream, so
 * the agent holds the guest's peer), half-close both ways, an error closes it.
 */
export function duplexOf(stream: GuestStream): Duplex {
  let waiting: ((err?: Error | null) => void) | undefined;
  stream.onDrain(() => {
    const cb = waiting;
    waiting = undefined;
    cb?.();
  });
  const duplex = new Duplex({
    allowHalfOpen: true,
    read: () => stream.resume(),
    write: (chunk: Buffer, _encoding, cb) => {
      if (stream.write(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))) cb();
      else waiting = cb;
    },
    final: (cb) => {
      stream.end();
      cb();
    },
    destroy: (err, cb) => {
      stream.close();
      cb(err);
    },
  });
  stream.onData((d) => {
    if (!duplex.push(d)) stream.pause();
  });
  stream.onEnd(() => duplex.push(null));
  stream.onClose((err) => {
    // A clean close comes after both ends, and Node then destroys the Duplex itself.
    if (err) duplex.destroy(err);
    else if (!duplex.destroyed && duplex.writableFinished && duplex.readableEnded) duplex.destroy();
  });
  return duplex;
}

/** An http server (not listening) that serves the Docker API `api` on the connections it is handed. */
function dockerServer(api: DockerApi): Server {
  const server = createServer((req, res) => void serveDockerRequest(api, req, res));
  server.on("upgrade", (req, socket, head) => void serveDockerUpgrade(api, req, socket, head));
  return server;
}

/**
 * Sets up docker in every VM of `hypervisor` as it comes to run (and in
 * those running already): /var/run/docker.sock served by the Docker API
 * scoped to the VM, and the tools socket for the docker client. `onError`
 * hears of a VM it could not set up (its guest stays without them).
 */
export function serveGuestDocker(containers: VmContainers, hypervisor: Hypervisor, opts: { onError?: (vm: string, err: HyperlabError) => void } = {}): GuestDocker {
  const done = new WeakSet<Vm>();
  const setUp = async (vm: Vm) => {
    // Once per VM: a VM that resumes from a pause is "running" again with its sockets still there.
    if (done.has(vm) || vm.state !== "running") return;
    done.add(vm);
    const server = dockerServer(new DockerApi({ containers, hypervisor, vm: vm.name }, dockerRoutes));
    try {
      await Promise.all([
        vm.listen(GUEST_DOCKER_SOCKET, (stream) => server.emit("connection", duplexOf(stream))),
        serveGuestTools(vm, async (name) => (await loadNodeTool(name)).data),
      ]);
    } catch (err) {
      // A VM that stopped meanwhile needs nothing; anything else is worth telling.
      if (vm.state === "running") opts.onError?.(vm.name, err instanceof HyperlabError ? err : new HyperlabError("RUNTIME_ERROR", String(err)));
    }
  };
  const unsubscribe = hypervisor.onEvent((e) => {
    if (e.type !== "state" || e.state !== "running") return;
    const vm = hypervisor.list().find((v) => v.name === e.vm);
    if (vm) void setUp(vm);
  });
  for (const vm of hypervisor.list()) void setUp(vm);
  return { close: unsubscribe };
}
