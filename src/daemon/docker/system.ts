// System endpoints: /_ping (version negotiation), /version and /info, with
// what they say about the guest (kernel, memory, operating system) read from
// the VM Docker's containers live in.
import { RUNTIMES } from "../../containers/engine.ts";
import { type DockerRoute, HYPERLAB_VERSION, MAX_API_VERSION, MIN_API_VERSION, type RouteCall, dockerHeaders, sendJson } from "./api.ts";

/** What /version and /info say about the guest, read once per VM. */
interface GuestFacts {
  kernel: string;
  os: string;
  memTotal: number;
}

const facts = new WeakMap<object, Promise<GuestFacts>>();

/** The guest's kernel release, operating system name and memory, read through its agent. */
function guestFacts(call: RouteCall): Promise<GuestFacts> {
  const vm = call.api.context.containers.vm(call.api.context.vm);
  let f = facts.get(vm);
  if (!f) {
    const text = (path: string) => vm.readFile(path).then((b) => new TextDecoder().decode(b), () => "");
    f = Promise.all([text("/proc/sys/kernel/osrelease"), text("/etc/os-release"), text("/proc/meminfo")]).then(([release, osRelease, meminfo]) => ({
      kernel: release.trim(),
      os: /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1] ?? "hyperlab guest (Linux on v86)",
      memTotal: Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0) * 1024,
    }));
    f.catch(() => facts.delete(vm));
    facts.set(vm, f);
  }
  return f;
}

/** /_ping: answers OK with the newest API version the daemon speaks, which clients negotiate down to. */
async function ping(call: RouteCall): Promise<void> {
  const head = call.req.method === "HEAD";
  call.res.head(200, {
    ...dockerHeaders(),
    "Builder-Version": "1",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    Pragma: "no-cache",
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": head ? "0" : "2",
  });
  call.res.end(head ? undefined : "OK");
}

async function version(call: RouteCall): Promise<void> {
  const g = await guestFacts(call).catch(() => ({ kernel: "", os: "", memTotal: 0 }));
  const details = { ApiVersion: MAX_API_VERSION, Arch: "386", BuildTime: "", Experimental: "false", GitCommit: "", GoVersion: "", KernelVersion: g.kernel, MinAPIVersion: MIN_API_VERSION, Os: "linux" };
  sendJson(call.res, 200, {
    Platform: { Name: "hyperlab" },
    Components: [
      { Name: "Engine", Version: HYPERLAB_VERSION, Details: details },
      ...RUNTIMES.map((r) => ({ Name: r, Version: "", Details: { GitCommit: "" } })),
    ],
    Version: HYPERLAB_VERSION,
    ApiVersion: MAX_API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: "",
    GoVersion: "",
    Os: "linux",
    Arch: "386",
    KernelVersion: g.kernel,
    BuildTime: "",
  });
}

async function info(call: RouteCall): Promise<void> {
  const api = call.api;
  const g = await guestFacts(call);
  const all = api.context.containers.containersOf(api.context.containers.vm(api.context.vm), { all: true });
  const images = await api.context.containers.images();
  const count = (s: string) => all.filter((c) => c.status === s).length;
  sendJson(call.res, 200, {
    ID: "hyperlab",
    Containers: all.length,
    ContainersRunning: count("running"),
    ContainersPaused: count("paused"),
    ContainersStopped: count("exited") + count("created"),
    Images: images.length,
    Driver: "overlay2",
    DriverStatus: [["Backing Filesystem", "ramfs"], ["Supports d_type", "true"]],
    Plugins: { Volume: ["local"], Network: ["bridge", "null"], Authorization: null, Log: ["json-file"] },
    MemoryLimit: true,
    SwapLimit: false,
    CpuCfsPeriod: true,
    CpuCfsQuota: true,
    CPUShares: true,
    CPUSet: false,
    PidsLimit: true,
    IPv4Forwarding: true,
    BridgeNfIptables: false,
    BridgeNfIp6tables: false,
    Debug: false,
    NFd: 0,
    OomKillDisable: false,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: "json-file",
    CgroupDriver: "cgroupfs",
    CgroupVersion: "2",
    NEventsListener: 0,
    KernelVersion: g.kernel,
    OperatingSystem: g.os,
    OSVersion: "",
    OSType: "linux",
    Architecture: "i386",
    IndexServerAddress: "https://index.docker.io/v1/",
    RegistryConfig: { AllowNondistributableArtifactsCIDRs: [], AllowNondistributableArtifactsHostnames: [], InsecureRegistryCIDRs: ["127.0.0.0/8"], IndexConfigs: {}, Mirrors: [] },
    NCPU: 1,
    MemTotal: g.memTotal,
    GenericResources: null,
    DockerRootDir: "/var/lib/hyperlab",
    HttpProxy: "",
    HttpsProxy: "",
    NoProxy: "",
    Name: `hyperlab-${api.context.vm}`,
    Labels: [],
    ExperimentalBuild: false,
    ServerVersion: HYPERLAB_VERSION,
    Runtimes: Object.fromEntries(RUNTIMES.map((r) => [r, { path: r }])),
    DefaultRuntime: "crun",
    Swarm: { NodeID: "", NodeAddr: "", LocalNodeState: "inactive", ControlAvailable: false, Error: "", RemoteManagers: null },
    LiveRestoreEnabled: false,
    Isolation: "",
    InitBinary: "",
    ContainerdCommit: { ID: "", Expected: "" },
    RuncCommit: { ID: "", Expected: "" },
    InitCommit: { ID: "", Expected: "" },
    SecurityOptions: ["name=seccomp,profile=builtin", "name=cgroupns"],
    Warnings: [],
  });
}

/** The system routes. */
export const systemRoutes: DockerRoute[] = [
  ["GET", /^\/_ping$/, ping],
  ["HEAD", /^\/_ping$/, ping],
  ["GET", /^\/version$/, version],
  ["GET", /^\/info$/, info],
];
