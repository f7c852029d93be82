// The Docker API layer: the handout's client → API → daemon → runtime, live.
// The guest's docker client (Debian's, loaded on its first use) sends REST
// calls over /var/run/docker.sock; the agent forwards each connection to
// this tab, whose Docker API hands them to the container engine, which runs
// crun or runc in the guest. It shows the client's state and the VM's last
// API calls: method, path, status and time (a streamed answer's time runs
// until its stream ends: `wait` until the container exits, `attach` until
// its output does).
import type { DockerCall } from "../../daemon/docker/api.ts";
import type { DockerActivity } from "../page-docker.ts";
import { el, list } from "./dom.ts";
import { seconds } from "./text.ts";

/** Megabytes with one decimal (what a download bar says). */
function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** A path as the table shows it: 64-hex ids cut to Docker's 12 (the whole path is the cell's title). */
function shortPath(path: string): string {
  return path.replace(/\b([0-9a-f]{12})[0-9a-f]{52}\b/g, "$1…");
}

/** Where the VM's docker client is, in words. */
function clientText(a: DockerActivity): string {
  const c = a.client;
  if (!c) return a.total ? "in the guest (loaded before)" : "not used yet in this VM: type a docker command in the terminal (its first use downloads the client)";
  switch (c.phase) {
    case "load": {
      const d = c.download;
      if (!d || d.totalBytes === 0) return "downloading from this site (first docker in this VM)…";
      return `downloading from this site: ${mb(d.loadedBytes)} of ${mb(d.totalBytes)} (once per page; the first docker waits for it)`;
    }
    case "install":
      return "writing it into the VM (43.6 MB, unpacked) …";
    case "ready":
      return "in the guest at /usr/libexec/hyperlab/docker (Debian's docker.io 20.10, i386); a Go program, so each docker command takes a few seconds of emulated CPU to start";
    case "error":
      return `could not be loaded: ${c.error ?? "unknown error"}`;
  }
}

/** The Docker API layer of the stack view, drawn into `parent`; `draw` shows one VM's docker. */
export class DockerPanel {
  private readonly box = el("div");

  constructor(parent: HTMLElement) {
    parent.append(this.box);
  }

  /** Shows the path a docker command takes, the client's state and the last API calls of `activity`. */
  draw(activity: DockerActivity): void {
    const rows: Node[] = [
      list([
        ["path", "docker (client, in the guest) → REST over /var/run/docker.sock → agent → Docker API (this tab) → container engine → crun/runc (in the guest)"],
        ["client", clientText(activity)],
        ["API calls", activity.total ? `${activity.total} so far; the last ${activity.calls.length} below` : "none yet"],
      ]),
    ];
    if (activity.calls.length) rows.push(callTable(activity.calls));
    this.box.replaceChildren(...rows);
  }
}

function callTable(calls: readonly DockerCall[]): HTMLTableElement {
  const table = el("table", { className: "api-calls" });
  table.append(el("tr", {}, el("th", { text: "method" }), el("th", { text: "path" }), el("th", { text: "status" }), el("th", { text: "time" })));
  for (const c of calls) {
    const path = el("td", { className: "mono path", text: shortPath(c.path) });
    path.title = `${c.path} (at ${new Date(c.at).toLocaleTimeString()})`;
    const tr = el("tr", {}, el("td", { className: "mono", text: c.method }), path, el("td", { text: c.status === 101 ? "101 (stream)" : String(c.status) }), el("td", { className: "time", text: c.ms < 1000 ? `${c.ms.toFixed(1)} ms` : seconds(c.ms) }));
    tr.dataset.method = c.method;
    tr.dataset.path = c.path;
    tr.dataset.status = String(c.status);
    if (c.status >= 400) tr.className = "failed";
    table.append(tr);
  }
  return table;
}
