// The Runtime layer of a podman-profile VM: Podman has no daemon. Each
// `podman` command does its work and exits; what stays beside a running
// container is conmon, its monitor, one per container, parent of the
// container's first process. Read from the guest's process list (busybox ps),
// not from `podman ps`: a podman command costs hundreds of millions of
// emulated instructions, a process listing a few.
import { el } from "./dom.ts";

/** A guest shell command that lists every process as `pid ppid comm args` (busybox ps). */
export const PODMAN_PROCESSES_SCRIPT = "ps -o pid,ppid,comm,args";

/** One container as the process list shows it. */
export interface PodmanContainerProcesses {
  /** its name (conmon's -n) */
  name: string;
  /** its id, 12 hex digits (conmon's -c) */
  id: string;
  conmonPid: number;
  /** the container's first process as the VM sees it (conmon's child), and its command */
  pid?: number;
  command?: string;
}

/** What runs in the guest for Podman. */
export interface PodmanProcesses {
  /** `podman` processes now: a command being run (there is no daemon) */
  podman: number;
  containers: PodmanContainerProcesses[];
  /** aardvark-dns's pid, while a network with DNS has containers */
  aardvarkDns?: number;
}

/** Children of conmon that are not a container's process: an exec session's conmon, the runtime while it makes the container. */
const NOT_THE_CONTAINER = new Set(["conmon", "crun", "runc"]);

/** Podman's processes from PODMAN_PROCESSES_SCRIPT's output. */
export function podmanProcesses(ps: string): PodmanProcesses {
  const rows = ps
    .split("\n")
    .slice(1)
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s*(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), comm: m[3]!, args: m[4]! }));
  const containers = rows
    .filter((r) => r.comm === "conmon")
    .map((r): PodmanContainerProcesses => {
      // While the container is being made, conmon's child is the runtime (crun create), not the container's process yet.
      const child = rows.find((c) => c.ppid === r.pid && !NOT_THE_CONTAINER.has(c.comm));
      return {
        name: /(?:^|\s)-n\s+(\S+)/.exec(r.args)?.[1] ?? "?",
        id: (/(?:^|\s)-c\s+([0-9a-f]{12})/.exec(r.args)?.[1] ?? "?"),
        conmonPid: r.pid,
        ...(child ? { pid: child.pid, command: child.args } : {}),
      };
    })
    // conmon runs for `podman exec` too (with --exec-attach): the container's own monitor is the one with its process.
    .filter((c, i, all) => c.pid !== undefined || !all.some((o, j) => j !== i && o.id === c.id));
  const aardvark = rows.find((r) => r.comm === "aardvark-dns");
  return { podman: rows.filter((r) => r.comm === "podman").length, containers, ...(aardvark ? { aardvarkDns: aardvark.pid } : {}) };
}

/** The Podman section of the Runtime layer, drawn into `parent`. */
export class PodmanPanel {
  private readonly summary = el("p", { className: "podman-daemon" });
  private readonly table = el("table", { className: "podman" });

  constructor(parent: HTMLElement) {
    parent.append(
      el("h4", { text: "Podman: no daemon" }),
      el("p", {
        className: "muted",
        text: "Each podman command does its work and exits. Beside each running container stays conmon, its monitor: the parent of the container's first process, which keeps its output and waits for its exit. Compare dockerd and containerd, which run all the time.",
      }),
      this.summary,
      this.table,
    );
  }

  /** Shows what PODMAN_PROCESSES_SCRIPT printed. */
  draw(ps: string): void {
    const p = podmanProcesses(ps);
    this.summary.textContent = [
      `daemon: none (${p.podman === 0 ? "no podman process now" : `${p.podman} podman process${p.podman === 1 ? "" : "es"} now: a command running`})`,
      `conmon: ${p.containers.length}, one per container`,
      ...(p.aardvarkDns ? [`aardvark-dns: PID ${p.aardvarkDns} (names on podman's networks)`] : []),
    ].join(" · ");
    const head = el("tr", {}, ...["container", "conmon (its monitor)", "its process (PID in the VM)"].map((h) => el("th", { text: h })));
    const rows = p.containers.map((c) => {
      const tr = el(
        "tr",
        {},
        el("td", { text: `${c.name} (${c.id})` }),
        el("td", { text: `PID ${c.conmonPid}` }),
        el("td", { text: c.pid ? `PID ${c.pid}: ${c.command}` : "none (starting or ended)" }),
      );
      tr.dataset.container = c.name;
      tr.dataset.conmon = String(c.conmonPid);
      return tr;
    });
    this.table.replaceChildren(head, ...rows);
    this.table.hidden = rows.length === 0;
  }
}
