// `docker` inside the guests, for the Node daemon and the page alike. Every
// VM that runs gets, through its guest agent, a listening
// /var/run/docker.sock whose connections are served with the Docker API
// scoped to that VM (so `docker ps` in VM b lists b's containers), and the
// tools socket through which the guest's /usr/bin/docker stub fetches the
// real docker client on first use.
//
// A connection from the guest is a GuestStream, not a socket of the host:
// http1-connection.ts serves HTTP/1.1 on it (llhttp parses the requests),
// upgrades (attach, exec) included. Nothing here needs Node: the host says
// where the parser's WebAssembly and the tools come from. With `lazy` the
// Docker API's code and the parser are loaded on a VM's first connection,
// so a page that never runs `docker` never downloads them.
import type { VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import type { GuestStream } from "../guest/agent.ts";
import { type ToolLoader, serveGuestTools } from "../guest/guest-tools.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Vm } from "../hypervisor/vm.ts";
import type { DockerApi } from "./docker/api.ts";

/** Where a guest's docker client finds the daemon (its default DOCKER_HOST). */
export const GUEST_DOCKER_SOCKET = "/var/run/docker.sock";

/** The guest side of docker for every running VM. */
export interface GuestDocker {
  /** stops setting it up for VMs that start from now on (the VMs' own go with them) */
  close(): void;
}

/** Where a VM's first use of a tool is: fetching it, writing it into the guest, there (or failed). */
export type ToolPhase = "load" | "install" | "ready" | "error";

/** What serving docker in the guests needs of its host. */
export interface GuestDockerOptions {
  /** the unpacked program of a guest tool (the docker client), asked for on its first use in each guest */
  loadTool: ToolLoader;
  /** llhttp's compiled WebAssembly module (see docker/llhttp.ts): the host knows where its bytes are */
  llhttp: () => Promise<WebAssembly.Module>;
  /** load the Docker API and the parser on a VM's first connection (default: at once, so its event log starts with the VM) */
  lazy?: boolean;
  /** how a VM's pushes, pulls and logins reach registries, asked at each request (undefined: the global fetch): a lab gives its VM a registry of its own */
  registryFetch?: (vm: string) => typeof fetch | undefined;
  /** hears of a VM it could not set up (its guest stays without them) */
  onError?: (vm: string, err: HyperlabError) => void;
  /** hears of each VM's Docker API once it is made (the page lists its calls) */
  onApi?: (vm: string, api: DockerApi) => void;
  /** hears where a VM's first use of a tool is (the page shows the client's download) */
  onTool?: (vm: string, name: string, phase: ToolPhase, err?: unknown) => void;
}

/** Serves one guest connection with the VM's Docker API. */
type ServeConnection = (stream: GuestStream) => void;

/** The Docker API's code and one parser instance, loaded once per host. */
async function loadServer(llhttp: () => Promise<WebAssembly.Module>) {
  const [{ DockerApi }, { dockerRoutes }, { serveHttp1 }, { Llhttp }, module] = await Promise.all([
    import("./docker/api.ts"),
    import("./docker/routes.ts"),
    import("./docker/http1-connection.ts"),
    import("./docker/llhttp.ts"),
    llhttp(),
  ]);
  const parsers = await Llhttp.instantiate(module);
  return (context: ConstructorParameters<typeof DockerApi>[0]) => {
    const api = new DockerApi(context, dockerRoutes);
    const serve: ServeConnection = (stream) => serveHttp1(stream, parsers.requestParser(), (req, res) => api.handle(req, res));
    return { api, serve };
  };
}

/** The answer a guest's client gets when the host could not load the Docker API: Docker's JSON error, then the end. */
function unavailable(stream: GuestStream, err: unknown): void {
  const body = new TextEncoder().encode(JSON.stringify({ message: `the Docker API could not be loaded here: ${(err as Error)?.message ?? err}` }) + "\n");
  const head = `HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  stream.write(new TextEncoder().encode(head));
  stream.write(body);
  stream.end();
}

/**
 * Sets up docker in every VM of `hypervisor` as it comes to run (and in
 * those running already): /var/run/docker.sock served by the Docker API
 * scoped to the VM, and the tools socket for the docker client.
 */
export function serveGuestDocker(containers: VmContainers, hypervisor: Hypervisor, opts: GuestDockerOptions): GuestDocker {
  let server: ReturnType<typeof loadServer> | undefined;
  const loaded = () => {
    server ??= loadServer(opts.llhttp);
    server.catch(() => (server = undefined)); // a later connection tries again
    return server;
  };
  const done = new WeakSet<Vm>();
  // Asked at each request, so a registry given to a VM after its API was made is used.
  const registryFetchOf = (vm: string): typeof fetch | undefined => {
    const of = opts.registryFetch;
    return of && ((input, init) => (of(vm) ?? globalThis.fetch)(input, init));
  };
  const setUp = async (vm: Vm) => {
    // Once per VM: a VM that resumes from a pause is "running" again with its sockets still there.
    if (done.has(vm) || vm.state !== "running") return;
    done.add(vm);
    let served: Promise<ServeConnection> | undefined;
    const serverOfVm = () => {
      served ??= loaded().then((make) => {
        // Bind sources named by the guest's docker are the guest's paths: never the host's.
        const { api, serve } = make({ containers, hypervisor, vm: vm.name, guestPaths: true, registryFetch: registryFetchOf(vm.name) });
        opts.onApi?.(vm.name, api);
        return serve;
      });
      served.catch(() => (served = undefined));
      return served;
    };
    if (!opts.lazy) serverOfVm().catch(() => {});
    const tell = (name: string, phase: ToolPhase, err?: unknown) => opts.onTool?.(vm.name, name, phase, err);
    // The tools socket: the guest's stubs ask for their program; the host's progress hears each step.
    const toolGuest = {
      listen: vm.listen.bind(vm),
      writeFile: async (path: string, data: string | Uint8Array, o?: { mode?: number; append?: boolean }) => {
        const name = path.slice(path.lastIndexOf("/") + 1);
        try {
          await vm.writeFile(path, data, o);
        } catch (err) {
          tell(name, "error", err);
          throw err;
        }
        // The second write (append, mode 0755) is the last of an install: the program is there.
        if (o?.append) tell(name, "ready");
      },
    };
    const loadTool: ToolLoader = async (name) => {
      tell(name, "load");
      try {
        const data = await opts.loadTool(name);
        tell(name, "install");
        return data;
      } catch (err) {
        tell(name, "error", err);
        throw err;
      }
    };
    try {
      await Promise.all([
        vm.listen(GUEST_DOCKER_SOCKET, (stream) => {
          serverOfVm().then(
            (serve) => serve(stream),
            (err: unknown) => unavailable(stream, err),
          );
        }),
        serveGuestTools(toolGuest, loadTool),
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
