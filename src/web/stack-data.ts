// What the stack view shows about the guest, read from the real system
// through the agent: one shell script prints marked sections, parsed here.

/** The kernel's and the runtime's layers of the stack, as the guest reports them. */
export interface GuestStack {
  release: string;
  uptimeSeconds: number;
  /** namespaces of PID 1 (the host's, inside the guest): type → inode number */
  namespaces: Array<{ type: string; inode: number }>;
  /** cgroup v2 controllers enabled at the root */
  controllers: string[];
  /** cgroup directories under /sys/fs/cgroup, as paths ("/" is the root) */
  cgroups: string[];
  /** first line of `crun --version` / `runc --version`, empty when absent */
  crun: string;
  runc: string;
  /** containers the runtimes know (`crun list`, `runc list`): id, PID of its init as the VM sees it, status */
  containers: Array<{ id: string; pid: number; status: string }>;
  /** namespaces of each container's init, by its PID: type → inode number */
  containerNamespaces: Record<number, Array<{ type: string; inode: number }>>;
}

/** Sections that change while the guest runs (read every refresh). */
export const LIVE_SCRIPT = [
  "echo @release; uname -r",
  "echo @uptime; cat /proc/uptime",
  'echo @ns; for f in /proc/1/ns/*; do echo "${f##*/} $(readlink "$f")"; done',
  "echo @controllers; cat /sys/fs/cgroup/cgroup.controllers",
  "echo @cgroups; cd /sys/fs/cgroup && find . -maxdepth 3 -type d",
  // runc is a Go program (tens of millions of instructions a start): asked only when it has containers.
  'echo @containers; L=$(crun list 2>/dev/null | tail -n +2; [ -n "$(ls /run/runc 2>/dev/null)" ] && runc list 2>/dev/null | tail -n +2); echo "$L"',
  'echo @container_ns; echo "$L" | while read id pid rest; do [ "$pid" -gt 0 ] 2>/dev/null && for f in /proc/$pid/ns/*; do echo "$pid ${f##*/} $(readlink "$f")"; done; done',
].join("; ");

/** Sections that do not change (read once): the runtimes' versions cost a process start each. */
export const STATIC_SCRIPT = ["echo @crun; crun --version 2>/dev/null | head -n 1", "echo @runc; runc --version 2>/dev/null | head -n 1"].join("; ");

/** Splits the scripts' output into its `@name` sections. */
export function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    const m = /^@(\w+)$/.exec(line);
    if (m) {
      current = [];
      out.set(m[1]!, current);
    } else if (current && line !== "") current.push(line);
  }
  return out;
}

/** Builds the guest's part of the stack from the scripts' output (the static part may be from an earlier read). */
export function parseGuestStack(live: string, stat: string): GuestStack {
  const s = sections(`${live}\n${stat}`);
  const get = (name: string) => s.get(name) ?? [];
  return {
    release: get("release")[0] ?? "",
    uptimeSeconds: Number(get("uptime")[0]?.split(/\s+/)[0] ?? NaN),
    namespaces: get("ns").flatMap((l) => {
      const m = /^(\S+) \S+:\[(\d+)\]$/.exec(l);
      return m ? [{ type: m[1]!, inode: Number(m[2]) }] : [];
    }),
    containerNamespaces: get("container_ns").reduce<GuestStack["containerNamespaces"]>((out, l) => {
      const m = /^(\d+) (\S+) \S+:\[(\d+)\]$/.exec(l);
      if (m) (out[Number(m[1])] ??= []).push({ type: m[2]!, inode: Number(m[3]) });
      return out;
    }, {}),
    controllers: (get("controllers")[0] ?? "").split(/\s+/).filter(Boolean),
    cgroups: get("cgroups")
      .map((p) => (p === "." ? "/" : p.replace(/^\.\//, "/")))
      .sort(),
    crun: get("crun")[0] ?? "",
    runc: get("runc")[0] ?? "",
    containers: get("containers").flatMap((l) => {
      const [id, pid, status] = l.trim().split(/\s+/);
      return id ? [{ id, pid: Number(pid), status: status ?? "" }] : [];
    }),
  };
}
