// Containers per VM: one container engine for each of a hypervisor's VMs,
// talking to that VM's agent through its worker (vm-agent.ts). Each engine's
// records ride in its VM's snapshots, so a restored or forked VM lists its
// containers again and follows the ones that were running. The daemon and
// the page both reach containers through this.
import { HyperlabError } from "../errors.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Vm } from "../hypervisor/vm.ts";
import type { FileShare } from "../hypervisor/worker-protocol.ts";
import type { ToolLoader } from "../guest/guest-tools.ts";
import { type Container, type ContainerEvent, ContainerEngine, type EngineRecords } from "./engine.ts";
import type { ImageStore } from "./image-store.ts";
import type { PortPublisher } from "./ports.ts";
import { type VolumeStore, guestVolumes } from "./volumes.ts";
import { vmAgent } from "./vm-agent.ts";

/** The VM containers go to when none is named. */
export const DEFAULT_VM = "default";

/** The key of the engine's records in a VM's snapshot. */
const RECORDS_KEY = "containers";

/** A container with the VM it lives in. */
export interface VmContainer {
  vm: Vm;
  container: Container;
}

/** The container engines of a hypervisor's VMs. Legal until the hypervisor closes. */
export class VmContainers {
  private readonly engines = new WeakMap<Vm, ContainerEngine>();
  private readonly unsubscribe: () => void;
  private readonly eventListeners = new Set<(vm: string, e: ContainerEvent) => void>();

  constructor(
    private readonly hypervisor: Hypervisor,
    /** the host's images, which every VM's containers run */
    readonly store: ImageStore,
    /**
     * `tools`: programs the host installs into a guest on first use (docker-init for --init);
     * `ports`: who publishes the ports of a VM's containers (the daemon's relay, the page's links);
     * `volumes`: where volumes are kept for every VM (Node: the data root's, shared into VMs over 9p;
     * default: each VM keeps its own in its guest, as a page does)
     */
    private readonly opts: { tools?: ToolLoader; ports?: (vm: Vm) => PortPublisher; volumes?: VolumeStore } = {},
  ) {
    // A VM restored or forked with containers takes them back as soon as it runs, before
    // anyone asks: the processes it follows may print or exit at any moment.
    this.unsubscribe = hypervisor.onEvent((e) => {
      if (e.type !== "state" || e.state !== "running") return;
      const vm = hypervisor.list().find((v) => v.name === e.vm);
      if (vm?.records?.[RECORDS_KEY]) this.engineOf(vm);
    });
  }

  /**
   * The VM named `ref` (default: `default`): VM_NOT_FOUND listing the VMs there
   * are. Legal any time.
   */
  vm(ref: string = DEFAULT_VM): Vm {
    return this.hypervisor.get(ref);
  }

  /**
   * The engine of VM `ref` for a request that needs its guest: VM_NOT_FOUND
   * (listing the VMs) for an unknown VM, VM_INVALID_STATE naming its state
   * for one that is not running.
   */
  engine(ref: string = DEFAULT_VM): ContainerEngine {
    const vm = this.vm(ref);
    if (vm.state !== "running") {
      const how = vm.state === "paused" ? `; resume it with 'hyperlab vm resume ${vm.name}'` : "";
      throw new HyperlabError("VM_INVALID_STATE", `cannot reach the containers of VM ${vm.name}: it is ${vm.state}${how}`, { state: vm.state, vm: vm.name });
    }
    return this.engineOf(vm);
  }

  /** The containers of `vm`, newest first, read from the host's records (its guest is not asked, so a paused VM lists too). */
  containersOf(vm: Vm, opts: { all?: boolean } = {}): Container[] {
    const engine = this.engines.get(vm);
    if (engine) return engine.ps(opts);
    const records = vm.records?.[RECORDS_KEY] as EngineRecords | undefined;
    // Not taken back yet (the VM has not run since it was restored): what its snapshot says.
    return (records?.containers ?? [])
      .filter((r) => opts.all || r.status === "running")
      .map((r) => ({ ...r, createdAt: new Date(r.createdAt), startedAt: r.startedAt ? new Date(r.startedAt) : undefined, finishedAt: r.finishedAt ? new Date(r.finishedAt) : undefined, logs: [] }))
      .sort((a, b) => +b.createdAt - +a.createdAt);
  }

  /** Every VM's containers, VMs in the hypervisor's order. */
  all(opts: { all?: boolean } = {}): VmContainer[] {
    return this.hypervisor
      .list()
      .filter((vm) => vm.state !== "destroyed")
      .flatMap((vm) => this.containersOf(vm, opts).map((container) => ({ vm, container })));
  }

  /** The images every VM's containers can run (the host's store). */
  images(): ReturnType<ImageStore["list"]> {
    return this.store.list();
  }

  /**
   * The volumes of VM `ref`'s containers (every VM shares one store in Node;
   * in a page each VM keeps its own). Legal while the VM runs.
   */
  volumes(ref: string = DEFAULT_VM): VolumeStore {
    return this.opts.volumes ?? this.engine(ref).volumes!;
  }

  /** The containers (any VM, any state) that mount volume `name`: a volume they use cannot be removed. */
  volumeUsers(name: string): VmContainer[] {
    return this.all({ all: true }).filter(({ container }) => container.mounts?.some((m) => m.type === "volume" && m.source === name));
  }

  /** Subscribes to the container events of every VM's engine (with the VM's name); returns the unsubscribe. Legal any time. */
  onEvent(listener: (vm: string, e: ContainerEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => void this.eventListeners.delete(listener);
  }

  /**
   * Gives `vm`, a fresh VM standing in for one that was lost (ended without a
   * snapshot), the containers' records of the lost one: listed exited, with
   * `reason` (see ContainerEngine.adoptLost). Legal before `vm` has containers.
   */
  adoptLost(vm: Vm, records: EngineRecords, reason: string, at?: Date): void {
    this.engineOf(vm).adoptLost(records, reason, at);
  }

  /** `vm`'s containers' records as its next snapshot would keep them (undefined: it has none). */
  recordsOf(vm: Vm): EngineRecords | undefined {
    return vm.collectRecords()?.[RECORDS_KEY] as EngineRecords | undefined;
  }

  /** Stops taking back containers of new VMs (the engines stay with their VMs). */
  close(): void {
    this.unsubscribe();
  }

  /** `vm`'s engine, made on first use; its records go into the VM's snapshots from then on. */
  private engineOf(vm: Vm): ContainerEngine {
    let engine = this.engines.get(vm);
    if (!engine) {
      const agent = vmAgent(vm);
      const mounts = { volumes: this.opts.volumes ?? guestVolumes(agent), share: (s: FileShare) => vm.share(s), unshare: (name: string) => vm.unshare(name) };
      engine = new ContainerEngine(agent, this.store, { vm: vm.name, tools: this.opts.tools, ports: this.opts.ports?.(vm), mounts });
      const records = vm.records?.[RECORDS_KEY] as EngineRecords | undefined;
      if (records) engine.restoreRecords(records);
      const e = engine;
      vm.provideRecords(RECORDS_KEY, () => e.records());
      e.onEvent((event) => {
        for (const l of [...this.eventListeners]) l(vm.name, event);
      });
      this.engines.set(vm, engine);
    }
    return engine;
  }
}
