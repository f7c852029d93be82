// The container systems the course handout names, and where each stands in
// hyperlab: runs (in which guest), not built yet, or cannot run here and why
// (docs/profiles.md gives the sources). One list for the stack view's
// Runtime layer and `npm run bench -- runtimes`.

/** Where a system stands in hyperlab. */
export type SystemState = "runs" | "not built yet" | "cannot run here";

/** One container system of the handout. */
export interface ContainerSystem {
  name: string;
  /** what it is, in a few words */
  kind: string;
  state: SystemState;
  /** the guest it runs in (a profile's name), for those that run or will */
  profile?: string;
  /** the command that starts `true` in busybox with it, for those that run or will */
  command?: string;
  /** why it does not run (yet) */
  why?: string;
}

/**
 * A guest shell command that prints the name of each process (kernel threads,
 * whose args busybox ps shows in brackets, left out), one per line, leaving
 * out the command's own shell and the processes it forked (ps, and awk or a
 * shell not yet turned into awk: which one ps sees depends on timing), so two
 * listings' difference is what started or ended in between.
 */
export const PROCESS_NAMES_SCRIPT = "ps -o pid,ppid,comm,args | awk -v me=$$ 'NR > 1 && $1 != me && $2 != me && $4 !~ /^\\[/ { print $3 }'";

/** Process counts by name from PROCESS_NAMES_SCRIPT's output. */
export function processCounts(output: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of output.split("\n").filter(Boolean)) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

/** The names of processes `after` has more of than `before`, with how many more. */
export function processesAdded(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...after].flatMap(([name, n]) => (n > (before.get(name) ?? 0) ? [[name, n - (before.get(name) ?? 0)]] : [])));
}

export const CONTAINER_SYSTEMS: readonly ContainerSystem[] = [
  { name: "crun", kind: "OCI runtime (C), under hyperlab's engine", state: "runs", profile: "default", command: "hyperlab run --rm --runtime crun busybox true" },
  { name: "runc", kind: "OCI runtime (Go), under hyperlab's engine", state: "runs", profile: "default", command: "hyperlab run --rm --runtime runc busybox true" },
  { name: "LXC", kind: "system containers: lxc-create, lxc-start, lxc-attach", state: "runs", profile: "lxc", command: "lxc-execute -n c1 -- true" },
  { name: "Podman", kind: "daemonless engine: conmon per container, netavark", state: "runs", profile: "podman", command: "podman run --rm busybox true" },
  { name: "Docker engine", kind: "dockerd, containerd, a shim per container, runc", state: "not built yet", profile: "docker", command: "docker run --rm busybox true", why: "Debian packages it for i386 (docker.io 20.10.24), and the guest kernel has the netfilter its bridge needs; its profile is a later part of issue 15" },
  { name: "CRI-O", kind: "Kubernetes' CRI runtime", state: "cannot run here", why: "no Debian package for any architecture and no 32-bit x86 release; it serves a Kubernetes kubelet through the CRI, not a learner's commands" },
  { name: "rkt", kind: "pod-native runtime (CoreOS)", state: "cannot run here", why: "ended: archived by the CNCF in 2019 and by its maintainers in 2020; no Debian package" },
  { name: "Mesos", kind: "cluster manager (Apache)", state: "cannot run here", why: "retired to the Apache Attic; a cluster manager with masters, agents and ZooKeeper rather than a runtime; no Debian package" },
];
