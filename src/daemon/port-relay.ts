// Published ports in Node: for each port a container publishes, a TCP
// listener on the host (127.0.0.1 unless an address was given), opened as
// the container starts and closed when it stops or goes, as dockerd's
// docker-proxy does. Each accepted connection becomes a byte stream through
// the VM's agent to the container's address and port in the guest
// (Vm.connect, flow-controlled both ways), and the two are piped together
// with half-close kept: a client that shuts down its writing side still gets
// the whole answer.
import { type Server, type Socket, createServer } from "node:net";
import { DEFAULT_HOST_IP, type PortBinding, type PortPublisher, type PortTarget, type PublishedPort } from "../containers/ports.ts";
import { HyperlabError } from "../errors.ts";
import type { GuestStream, StreamTarget } from "../guest/agent.ts";

/** What the relay needs of a VM: a byte stream to an address in its guest (a hypervisor Vm has it). */
export interface StreamOpener {
  connect(target: StreamTarget): Promise<GuestStream>;
}

/** How a relay reports what it cannot do for a connection (the client's connection is closed either way). */
export interface RelayOptions {
  /** a connection that could not reach the container (nothing listens on its port, the VM stopped) */
  onConnectError?: (err: HyperlabError, binding: PublishedPort, containerName: string) => void;
}

/**
 * The error a failed listen on a host port turns into, in dockerd's words
 * ("Bind for 127.0.0.1:8080 failed: port is already allocated") and with
 * what to do: another port, a free one, or (below 1024) the right to bind it.
 */
export function bindError(err: NodeJS.ErrnoException, hostIp: string, hostPort: number, containerName: string): HyperlabError {
  const where = `${hostIp}:${hostPort}`;
  const lead = `cannot publish port ${hostPort} for container ${containerName}: Bind for ${where} failed`;
  const detail = { hostIp, hostPort, errno: err.code };
  switch (err.code) {
    case "EADDRINUSE":
      return new HyperlabError("PORT_UNAVAILABLE", `${lead}: port is already allocated (another program or container listens on it); choose another host port, or give only the container port (-p 80) to get a free one`, detail);
    case "EACCES":
    case "EPERM":
      return new HyperlabError(
        "PORT_UNAVAILABLE",
        `${lead}: permission denied: host ports below 1024 need root or CAP_NET_BIND_SERVICE for the daemon (or a lower net.ipv4.ip_unprivileged_port_start); publish on a port from 1024 up, e.g. -p 8080:${hostPort}`,
        detail,
      );
    case "EADDRNOTAVAIL":
      return new HyperlabError("PORT_UNAVAILABLE", `${lead}: ${hostIp} is not an address of this machine; give one of its addresses, or none for ${DEFAULT_HOST_IP}`, detail);
    default:
      return new HyperlabError("PORT_UNAVAILABLE", `${lead}: ${err.message}`, detail);
  }
}

/** Listens on one host address and port (0: any free one); resolves with the server, or rejects with the bind error. */
function listenOn(binding: PortBinding, onConnection: (socket: Socket) => void, containerName: string): Promise<Server> {
  const hostIp = binding.hostIp || DEFAULT_HOST_IP;
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a client that shuts down its writing side still reads the whole answer.
    const server = createServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, onConnection);
    server.once("error", (err: NodeJS.ErrnoException) => reject(bindError(err, hostIp, binding.hostPort, containerName)));
    // exclusive: a port is one container's, never shared with a cluster worker.
    server.listen({ host: hostIp, port: binding.hostPort, exclusive: true }, () => {
      server.removeAllListeners("error");
      server.on("error", () => {}); // after listening, errors are per connection
      resolve(server);
    });
  });
}

/**
 * The port publisher of one VM in Node: listeners on the host for each
 * container's bindings, relaying connections to `vm`. Listeners close when
 * the engine unpublishes (the container stopped or was removed), and so do
 * the connections they carried (the container's side is gone).
 */
export function nodePortPublisher(vm: StreamOpener, opts: RelayOptions = {}): PortPublisher {
  const open = new Map<string, { servers: Server[]; sockets: Set<Socket> }>();
  return {
    async publish(target: PortTarget): Promise<PublishedPort[]> {
      const entry = { servers: [] as Server[], sockets: new Set<Socket>() };
      const published: PublishedPort[] = [];
      try {
        for (const binding of target.bindings) {
          let port: PublishedPort | undefined;
          const server = await listenOn(
            binding,
            (socket) => {
              entry.sockets.add(socket);
              socket.once("close", () => entry.sockets.delete(socket));
              relay(vm, socket, target, port!, opts);
            },
            target.containerName,
          );
          entry.servers.push(server);
          const address = server.address() as { address: string; port: number };
          port = { hostIp: address.address, hostPort: address.port, containerPort: binding.containerPort, protocol: "tcp" };
          published.push(port);
        }
      } catch (err) {
        for (const s of entry.servers) s.close();
        throw err;
      }
      open.get(target.containerId)?.servers.forEach((s) => s.close());
      open.set(target.containerId, entry);
      return published;
    },
    unpublish(containerId: string): void {
      const entry = open.get(containerId);
      if (!entry) return;
      open.delete(containerId);
      for (const s of entry.servers) s.close();
      for (const socket of entry.sockets) socket.destroy();
    },
  };
}

/** One client connection: a stream to the container's port, piped both ways. */
function relay(vm: StreamOpener, socket: Socket, target: PortTarget, port: PublishedPort, opts: RelayOptions): void {
  socket.on("error", () => {});
  vm.connect({ host: target.ipAddress, port: port.containerPort }).then(
    (stream) => {
      if (socket.destroyed) return stream.close();
      pipe(socket, stream);
      socket.resume();
    },
    (err: unknown) => {
      // Nothing listens there (yet): the client sees its connection closed, as with docker-proxy.
      socket.destroy();
      opts.onConnectError?.(err instanceof HyperlabError ? err : new HyperlabError("AGENT_ERROR", String(err)), port, target.containerName);
    },
  );
}

/**
 * Bytes both ways between a host socket and a guest stream, each direction
 * held back while the other side's buffer is full (the stream's window, the
 * socket's high-water mark) and ended on its own (half-close); an error or
 * an abort on either side ends both.
 */
export function pipe(socket: Socket, stream: GuestStream): void {
  socket.on("data", (chunk: Buffer) => {
    if (!stream.write(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))) socket.pause();
  });
  stream.onDrain(() => socket.resume());
  socket.on("end", () => stream.end());
  stream.onData((chunk) => {
    if (!socket.write(chunk)) stream.pause();
  });
  socket.on("drain", () => stream.resume());
  stream.onEnd(() => socket.end());
  stream.onClose((err) => {
    if (err) socket.destroy();
  });
  // Closed before the stream was over (an error, an abort): the guest's side is dropped too; after a clean end a no-op.
  socket.on("close", () => stream.close());
}
