// `hyperlab run`: Docker's `run` on a real OCI runtime in a VM: one of the
// daemon's VMs when a daemon runs (default: `default`), else a VM restored
// from the boot snapshot in this process's own hypervisor, for this command.
import { readFileSync } from "node:fs";
import { type CreateOptions, RUNTIMES, type Runtime, exitOrStartError } from "../containers/engine.ts";
import { DEFAULT_VM, VmContainers } from "../containers/vm-containers.ts";
import { loadNodeTool } from "../hardware/node.ts";
import { Hypervisor } from "../hypervisor/hypervisor.ts";
import { defaultSocketPath } from "../daemon/socket.ts";
import { containersPath } from "./container-refs.ts";
import { parseCpus, parseMemory, parsePidsLimit } from "../containers/limits.ts";
import { defaultDataRoot, nodeImageStore } from "../containers/node-store.ts";
import { nodeVolumes } from "../containers/node-volumes.ts";
import { HyperlabError } from "../errors.ts";
import { attachTerminal, terminalSize, writeOutput } from "./terminal.ts";
import { API_VERSION } from "../daemon/socket.ts";
import type { ContainerJson } from "../daemon/v1.ts";
import { usageError } from "./args.ts";
import { findDaemon, openStream } from "./daemon-client.ts";
import { nodePortPublisher } from "../daemon/port-relay.ts";
import { parseExpose, parsePublish } from "../containers/ports.ts";
import { parseMountSpec, parseVolumeSpec } from "../containers/mounts.ts";
import type { Verb } from "./verb.ts";
import { parseSecurityOpts } from "../containers/confinement.ts";

const USAGE = "hyperlab run [OPTIONS] IMAGE [COMMAND] [ARG...]";
const HELP = `Usage: ${USAGE}

Creates and runs a container from IMAGE in a Linux guest, with crun (default)
or runc, its own namespaces (pid, mount, uts, ipc, net, cgroup) and cgroup v2
limits. Exits with the container's exit status (125: hyperlab's own error).

Options:
      --rm                 remove the container when it exits
  -i, --interactive        keep stdin open
  -t, --tty                allocate a pseudo-terminal
  -d, --detach             print the container id and leave it running
      --name NAME          name the container
  -e, --env KEY=VALUE      set an environment variable (repeatable)
  -m, --memory SIZE        memory limit (e.g. 64m)
      --cpus N             CPU limit as a share of the guest's one CPU (e.g. 0.5)
      --pids-limit N       maximum number of processes
      --network NETWORK    bridge (default: own address on 10.88.0.0/16), none
                           (loopback only), or a user network ('hyperlab network
                           create'; with a daemon)
      --network-alias NAME another name the container answers to on its user
                           network (repeatable)
      --ip ADDRESS         a fixed address on a user network made with --subnet
  -h, --hostname NAME      container host name
      --runtime NAME       crun (default) or runc
  -p, --publish [IP:][HOSTPORT:]CONTAINERPORT[/tcp]
                           publish a container port on this machine while the
                           container runs (repeatable; default address
                           127.0.0.1; no HOSTPORT: a free one; 'hyperlab port'
                           shows it)
  -P, --publish-all        publish every port the image EXPOSEs on free ports
      --expose PORT[/tcp]  expose a port (or a range) besides the image's
  -v, --volume NAME:/path[:ro] | /host/dir:/path[:ro] | /path
                           mount a volume (made if missing), a host directory
                           (made if missing; shared with the guest, not copied:
                           changes show both ways at once) or a new anonymous
                           volume (repeatable; a relative host path is taken
                           from the current directory)
      --mount type=volume|bind,source=…,target=…[,readonly]
                           the same in --mount's form (a bind's source must
                           exist) (repeatable)
      --init               run an init (tini) as PID 1 that forwards signals and reaps orphans
      --cap-add CAP        add a capability to Docker's default set (e.g. NET_ADMIN;
                           ALL: every one) (repeatable)
      --cap-drop CAP       drop a capability (e.g. CHOWN; ALL: every one) (repeatable)
      --read-only          mount the container's root filesystem read-only
      --security-opt OPT   no-new-privileges[:true|false], seccomp=unconfined or
                           seccomp=PROFILE.json (default: Docker's default profile)
                           (repeatable)
      --vm NAME            the daemon's VM to run it in (default: default)
      --cold               boot the guest's kernel instead of restoring the boot
                           snapshot (without a daemon only)
`;

type Flag = { takes: boolean; apply: (o: RunFlags, v: string) => void };
interface RunFlags extends Omit<CreateOptions, "image"> {
  /** --security-opt as given, read once all flags are (see parseSecurityOpts) */
  securityOpt?: string[];
  detach?: boolean;
  /** the daemon's VM to run in (default: default) */
  vm?: string;
  /** boot the guest cold instead of restoring the boot snapshot */
  cold?: boolean;
}

/** Docker's run flags: name → whether it takes a value, and what it sets. */
const FLAGS: Record<string, Flag> = {
  "--rm": { takes: false, apply: (o) => (o.autoRemove = true) },
  "--interactive": { takes: false, apply: (o) => (o.interactive = true) },
  "--tty": { takes: false, apply: (o) => (o.tty = terminalSize()) },
  "--detach": { takes: false, apply: (o) => (o.detach = true) },
  "--cold": { takes: false, apply: (o) => (o.cold = true) },
  "--name": { takes: true, apply: (o, v) => (o.name = v) },
  "--init": { takes: false, apply: (o) => (o.init = true) },
  "--vm": { takes: true, apply: (o, v) => (o.vm = v) },
  "--env": { takes: true, apply: (o, v) => (o.env = [...(o.env ?? []), v.includes("=") ? v : `${v}=${process.env[v] ?? ""}`]) },
  "--memory": { takes: true, apply: (o, v) => (o.limits = { ...o.limits, memoryBytes: parseMemory(v) }) },
  "--cpus": { takes: true, apply: (o, v) => (o.limits = { ...o.limits, ...parseCpus(v) }) },
  "--pids-limit": { takes: true, apply: (o, v) => (o.limits = { ...o.limits, pidsLimit: parsePidsLimit(v) }) },
  // bridge, none or a user network: the engine answers "network X not found" for others.
  "--network": {
    takes: true,
    apply: (o, v) => {
      if (!v) throw new HyperlabError("INVALID_ARGUMENT", "--network needs a network: bridge, none or a user network's name");
      o.network = v;
    },
  },
  "--network-alias": { takes: true, apply: (o, v) => (o.aliases = [...(o.aliases ?? []), v]) },
  "--ip": { takes: true, apply: (o, v) => (o.ipAddress = v) },
  "--publish": { takes: true, apply: (o, v) => (o.ports = [...(o.ports ?? []), ...parsePublish(v)]) },
  "--publish-all": { takes: false, apply: (o) => (o.publishAll = true) },
  "--expose": { takes: true, apply: (o, v) => (o.exposedPorts = [...(o.exposedPorts ?? []), ...parseExpose(v)]) },
  "--hostname": { takes: true, apply: (o, v) => (o.hostname = v) },
  "--volume": { takes: true, apply: (o, v) => (o.mounts = [...(o.mounts ?? []), parseVolumeSpec(v, process.cwd())]) },
  "--mount": { takes: true, apply: (o, v) => (o.mounts = [...(o.mounts ?? []), parseMountSpec(v)]) },
  "--cap-add": { takes: true, apply: (o, v) => (o.capAdd = [...(o.capAdd ?? []), v]) },
  "--cap-drop": { takes: true, apply: (o, v) => (o.capDrop = [...(o.capDrop ?? []), v]) },
  "--read-only": { takes: false, apply: (o) => (o.readOnly = true) },
  "--security-opt": { takes: true, apply: (o, v) => (o.securityOpt = [...(o.securityOpt ?? []), v]) },
  "--privileged": {
    takes: false,
    apply: () => {
      throw new HyperlabError("NOT_SUPPORTED", "--privileged is not supported: containers run with Docker's default confinement (--cap-add ALL and --security-opt seccomp=unconfined lift most of it)");
    },
  },
  "--runtime": {
    takes: true,
    apply: (o, v) => {
      if (!RUNTIMES.includes(v as Runtime)) throw new HyperlabError("INVALID_ARGUMENT", `unknown runtime '${v}': use ${RUNTIMES.join(" or ")}`);
      o.runtime = v as Runtime;
    },
  },
};
const SHORT: Record<string, string> = { "-i": "--interactive", "-t": "--tty", "-d": "--detach", "-e": "--env", "-m": "--memory", "-h": "--hostname", "-p": "--publish", "-P": "--publish-all", "-v": "--volume" };


/** Splits `run`'s arguments into flags, image and command (flags end at the image, as in Docker). */
export function parseRunArgs(args: string[]): { flags: RunFlags; image: string; command: string[] } | "help" {
  const flags: RunFlags = {};
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help") return "help";
    if (!arg.startsWith("-") || arg === "-") break;
    // -it, -ti and friends: each letter a flag.
    const expanded = /^-[a-zA-Z]{2,}$/.test(arg) ? [...arg.slice(1)].map((c) => `-${c}`) : [arg];
    for (const one of expanded) {
      const [rawName, inline] = one.startsWith("--") && one.includes("=") ? [one.slice(0, one.indexOf("=")), one.slice(one.indexOf("=") + 1)] : [one, undefined];
      const name = SHORT[rawName] ?? rawName;
      const flag = FLAGS[name];
      if (!flag) throw usageError("run", USAGE, `unknown flag: ${rawName}`);
      let value = inline;
      if (flag.takes && value === undefined) {
        value = args[++i];
        if (value === undefined) throw usageError("run", USAGE, `flag ${rawName} needs a value`);
      }
      flag.apply(flags, value ?? "");
    }
  }
  const image = args[i];
  if (!image) throw usageError("run", USAGE, `'hyperlab run' needs an image, e.g. 'hyperlab run --rm busybox echo hi'.`);
  if (flags.securityOpt) {
    // As the docker CLI: seccomp=FILE is read here and sent as the profile itself.
    Object.assign(flags, parseSecurityOpts(flags.securityOpt, readProfile));
    delete flags.securityOpt;
  }
  return { flags, image, command: args.slice(i + 1) };
}

/** A seccomp profile file named by --security-opt seccomp=FILE (docker's words when it cannot be read). */
function readProfile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new HyperlabError("INVALID_ARGUMENT", `opening seccomp profile (${path}) failed: ${(err as Error).message}`);
  }
}

/** Runs `hyperlab run`; resolves to the process exit status. */
async function runCommand(args: string[]): Promise<number> {
  const parsed = parseRunArgs(args);
  if (parsed === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const { flags: allFlags, image, command } = parsed;
  const { cold, vm, ...flags } = allFlags;
  // With a daemon running, the container lives in its guest (and the daemon's images are its store's).
  const daemon = await findDaemon();
  const store = nodeImageStore(undefined, { dataRoot: defaultDataRoot() });
  if (!daemon) await store.get(image); // an unknown image fails before any VM boots
  if (daemon) {
    const { detach, ...create } = flags;
    const c = await daemon.call<ContainerJson>("POST", containersPath(vm), { ...create, image, command });
    if (detach) {
      await daemon.call("POST", containersPath(vm, `/${c.id}/start`));
      process.stdout.write(`${c.id}\n`);
      return 0;
    }
    if (!flags.interactive && !flags.tty) {
      return daemon.stream("POST", containersPath(vm, `/${c.id}/start?attach=1`), {}, writeOutput);
    }
    const stream = await openStream(daemon.socketPath, `/${API_VERSION}${containersPath(vm, `/${c.id}/start`)}`, writeOutput);
    return attachTerminal(stream, flags);
  }

  if (vm !== undefined) throw new HyperlabError("INVALID_ARGUMENT", `--vm needs a running daemon (none answers on ${defaultSocketPath()}): VMs live in the daemon. Start one with 'hyperlab daemon &'.`);
  if (flags.network !== undefined && flags.network !== "bridge" && flags.network !== "none") {
    throw new HyperlabError("INVALID_ARGUMENT", `--network ${flags.network} needs a running daemon (none answers on ${defaultSocketPath()}): user networks live in the daemon's VMs. Start one with 'hyperlab daemon &', then 'hyperlab network create ${flags.network}'.`);
  }
  // Without a daemon: a hypervisor in this process with one VM for this container, in its worker as the daemon's are.
  const hypervisor = await Hypervisor.create({ spareWorkers: 0, warmPool: 0 });
  const containers = new VmContainers(hypervisor, store, {
    tools: async (name) => (await loadNodeTool(name)).data,
    ports: (vm) => nodePortPublisher(vm),
    volumes: nodeVolumes(defaultDataRoot()),
  });
  try {
    await hypervisor.createVm({ name: DEFAULT_VM, cold });
    const engine = containers.engine(DEFAULT_VM);
    const { container, attachment } = await engine.run({ ...flags, image, command }, { attached: !flags.detach });
    if (flags.detach) {
      process.stdout.write(`${container.id}\n`);
      // Without a daemon the guest lives only as long as this command.
      process.stderr.write("hyperlab: no daemon is running, so the guest (and this container) stops when this command exits\n");
      return 0;
    }
    attachment.onOutput(writeOutput);
    return await attachTerminal(
      { ...attachment, exited: exitOrStartError(attachment), resize: (rows, cols) => void attachment.resize(rows, cols).catch(() => {}) },
      flags,
    );
  } finally {
    containers.close();
    await hypervisor.close();
  }
}

export const runVerb: Verb = {
  name: "run",
  summary: "run a command in a new container",
  run: runCommand,
};
