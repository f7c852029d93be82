// The handout's container systems, in the Runtime layer: each with where it
// stands here (runs, in which guest; not built yet; cannot run here, and why),
// and for those this VM has (crun and runc, under hyperlab's engine) the same
// workload, `true` in busybox, started by each on request: its start time,
// the emulated instructions it cost, and the processes it left running.
import { CONTAINER_SYSTEMS, type ContainerSystem, PROCESS_NAMES_SCRIPT, processCounts, processesAdded } from "../../containers/container-systems.ts";
import type { Runtime } from "../../containers/engine.ts";
import type { PageVm } from "../page-vm.ts";
import { button, el, showStatus } from "./dom.ts";
import { seconds } from "./text.ts";

/** What starting `true` with one runtime cost, measured in this VM. */
interface Measured {
  ms: number;
  instructions: number;
  /** processes that were not there before, by name */
  left: string[];
}

/** The container systems section of the Runtime layer, drawn into `parent`. */
export class SystemsPanel {
  private readonly status = el("p", { className: "status" });
  private readonly table = el("table", { className: "systems" });
  private readonly measured = new Map<string, Measured>();
  private measuring = false;

  constructor(
    parent: HTMLElement,
    private readonly vm: Pick<PageVm, "containers" | "exec" | "metrics" | "profile">,
    /** holds the stack view's own reads of the guest (their processes would count as left running) until released */
    private readonly hold: () => Promise<() => void> = async () => () => {},
  ) {
    parent.append(
      el("h4", { text: "Container systems" }),
      el("p", {
        className: "muted",
        text: "The systems the handout names, all built on the same kernel features. Start the same container (true in busybox) with each runtime this VM has, and compare.",
      }),
      el("div", { className: "actions" }, button("Start true with each", () => void this.measure(), { name: "systems" })),
      this.status,
      this.table,
    );
    this.draw();
  }

  private draw(): void {
    const head = el("tr", {}, ...["system", "here", "start", "instructions", "left running"].map((h) => el("th", { text: h })));
    const rows = CONTAINER_SYSTEMS.map((s) => {
      const m = this.measured.get(s.name);
      const tr = el(
        "tr",
        {},
        el("td", {}, el("strong", { text: s.name }), el("br"), el("span", { className: "muted", text: s.kind })),
        el("td", { text: where(s, this.vm.profile) }),
        el("td", { text: m ? seconds(m.ms) : "" }),
        el("td", { text: m ? `${(m.instructions / 1e6).toFixed(1)} M` : "" }),
        el("td", { text: m ? (m.left.length ? m.left.join(", ") : "nothing") : "" }),
      );
      tr.dataset.system = s.name;
      tr.dataset.state = s.state;
      if (m) tr.dataset.ms = String(Math.round(m.ms));
      return tr;
    });
    this.table.replaceChildren(head, ...rows);
  }

  /** Starts `true` in busybox with crun, then runc, in this VM, each attached and removed at its end as `docker run --rm` does. */
  private async measure(): Promise<void> {
    if (this.measuring) return;
    this.measuring = true;
    const release = await this.hold();
    try {
      const containers = this.vm.containers();
      showStatus(this.status, "Copying the busybox image into this VM (once)…");
      await containers.engine.pull("busybox");
      for (const runtime of ["crun", "runc"] as Runtime[]) {
        showStatus(this.status, `Starting true with ${runtime}…`);
        const once = async () => {
          const i0 = (await this.vm.metrics()).cpu.instructions;
          const t0 = performance.now();
          const { attachment } = await containers.engine.run({ runtime, image: "busybox", command: ["true"], autoRemove: true }, { attached: true });
          const code = await attachment.exited;
          const ms = performance.now() - t0;
          if (code !== 0) throw new Error(`true with ${runtime} exited ${code}`);
          return { ms, instructions: (await this.vm.metrics()).cpu.instructions - i0 };
        };
        await once(); // its first start warms the guest's caches and v86's compiled code
        const before = await this.processes();
        const m = await once();
        const after = await this.processes();
        this.measured.set(runtime, { ...m, left: Object.entries(processesAdded(before, after)).map(([name, n]) => (n > 1 ? `${name} ×${n}` : name)) });
        this.draw();
      }
      showStatus(this.status, "Each started its container and was gone when it ended: hyperlab's engine follows a container through the guest's agent, so no shim or daemon stays in the VM.");
    } catch (err) {
      showStatus(this.status, err);
    } finally {
      release();
      this.measuring = false;
    }
  }

  /**
   * The guest's processes by name (kernel threads left out) that are there in
   * two listings half a second apart. The stack view's own reads of the guest
   * are held while this measures (a slow one on a busy host showed as a
   * shell left running); anything else short-lived comes and goes between.
   */
  private async processes(): Promise<Map<string, number>> {
    const list = async () => processCounts((await this.vm.exec(["/bin/sh", "-c", PROCESS_NAMES_SCRIPT], { timeoutMs: 20_000 })).stdout);
    const first = await list();
    await new Promise((r) => setTimeout(r, 500));
    const second = await list();
    return new Map([...first].map(([name, n]) => [name, Math.min(n, second.get(name) ?? 0)]));
  }
}

/** Where a system stands here, in words, for a VM of `profile` (undefined: the default guest). */
function where(s: ContainerSystem, profile: string | undefined): string {
  if (s.state === "runs") {
    if (s.profile === (profile ?? "default") || (s.profile === "default" && profile)) return `runs in this VM${s.command ? `: ${s.command}` : ""}`;
    return `runs in the ${s.profile} profile: <hyperlab-vm profile="${s.profile}">, or hyperlab boot --profile ${s.profile}`;
  }
  return `${s.state}: ${s.why}`;
}
