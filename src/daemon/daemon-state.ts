// What the daemon keeps of its VMs across its own restarts, in the data
// root's state/ folder:
//   daemon.json        the journal: the VMs (name, image, memory, CPU share,
//                      network, state) and the hypervisor's networks, with the
//                      PID of the daemon that keeps it and whether it stopped
//                      after saving every VM (`saved`); rewritten as they change
//   records/VM.json    each VM's containers' records, rewritten at each
//                      container event, so a crash loses no container
//   snapshots/VM.snap  each VM's delta snapshot, written when the daemon stops
//                      (SIGTERM, SIGINT) and consumed by the next start
// Every file is written atomically (temporary file, fsync, rename). A start
// after a clean stop restores each VM from its snapshot: running ones run on,
// paused ones stay paused, their containers with them. After a crash (SIGKILL,
// a power cut) nothing was saved: each VM is started fresh under its name and
// its containers are listed exited (255) with why, never silently gone.
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { EngineRecords } from "../containers/engine.ts";
import { alive, writeAtomic } from "../containers/node-store.ts";
import type { VmContainers } from "../containers/vm-containers.ts";
import { HyperlabError } from "../errors.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import { DEFAULT_NETWORK, NO_NETWORK } from "../hypervisor/networks.ts";
import type { VmState } from "../hypervisor/vm-state.ts";

/** A VM as the journal keeps it. */
interface JournalVm {
  name: string;
  /** `default` or the image's reference */
  image: string;
  /** its guest profile (absent in journals from before profiles: `default`) */
  profile?: string;
  memoryMiB: number;
  cpuShare: number;
  /** its hypervisor network, `none` without one */
  net: string;
  state: VmState;
  /** why its snapshot could not be saved, when it could not */
  saveError?: string;
}

/** state/daemon.json */
interface Journal {
  version: 1;
  /** the daemon process that keeps it */
  pid: number;
  /** true once that daemon stopped after saving (or deliberately dropping) its VMs */
  saved: boolean;
  /** when it was last written (ISO) */
  at: string;
  vms: JournalVm[];
  networks: Array<{ name: string; subnet: string; isolated: boolean }>;
}

/** What a start brought back. */
export interface Recovery {
  /** VMs restored from their snapshots */
  restored: string[];
  /** VMs started fresh in place of lost ones, with why they were lost */
  lost: Array<{ vm: string; reason: string; containers: number }>;
  /** VMs of the journal not brought back, with why */
  dropped: Array<{ vm: string; reason: string }>;
}

/** What a stop saved. */
export interface SaveReport {
  saved: Array<{ vm: string; bytes: number }>;
  failed: Array<{ vm: string; reason: string }>;
}

const JOURNAL_VERSION = 1;
/** How often the journal is compared with the hypervisor's VMs and networks (rewritten when they differ). */
const JOURNAL_POLL_MS = 500;
/** How long one VM's snapshot may take when the daemon stops before it is given up (that VM is then reported lost at the next start). */
const SAVE_TIMEOUT_MS = 60_000;
/** How long a VM restored at start may take to come up. */
const RESTORE_TIMEOUT_MS = 120_000;

const encoder = new TextEncoder();

/** `err`'s message. */
function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether `err` is a missing file. */
function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}

/** The state folder of a data root: where the daemon keeps its VMs across restarts. */
export class DaemonState {
  private readonly dir: string;
  private journalText = "";
  private journalWrites: Promise<void> = Promise.resolve();
  private readonly recordWrites = new Map<string, Promise<void>>();
  /** per VM, the write waiting for the running one (see writeRecords) */
  private readonly recordsQueued = new Map<string, { read: () => EngineRecords | undefined; done: Promise<void> }>();
  private readonly dirtyRecords = new Set<string>();
  private unsubscribe: Array<() => void> = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  /** a write failed and was reported (see writeFailed) */
  private failing = false;

  private constructor(
    dataRoot: string,
    /** the journal the previous daemon left (undefined: none) */
    private readonly previous: Journal | undefined,
    private readonly log: (line: string) => void,
  ) {
    this.dir = join(dataRoot, "state");
  }

  /**
   * The state folder of `dataRoot`, with the journal the previous daemon left.
   * Refuses (INVALID_ARGUMENT) when a daemon that is still running keeps it:
   * two daemons on one data root would overwrite each other's VMs. A journal
   * that cannot be read is reported and set aside (state/daemon.json.damaged),
   * never trusted.
   */
  static async open(dataRoot: string, log: (line: string) => void): Promise<DaemonState> {
    const dir = join(dataRoot, "state");
    await mkdir(join(dir, "records"), { recursive: true, mode: 0o700 });
    await mkdir(join(dir, "snapshots"), { recursive: true, mode: 0o700 });
    let previous: Journal | undefined;
    const path = join(dir, "daemon.json");
    try {
      const parsed = JSON.parse(await readFile(path, "utf8")) as Journal;
      if (parsed?.version !== JOURNAL_VERSION || !Array.isArray(parsed.vms) || !Array.isArray(parsed.networks) || typeof parsed.pid !== "number") {
        throw new Error(`not a version-${JOURNAL_VERSION} journal`);
      }
      previous = parsed;
    } catch (err) {
      if (!isMissing(err)) {
        log(`hyperlab: the VM journal ${path} could not be read (${errorMessage(err)}); it is kept as daemon.json.damaged and no VM is brought back from it`);
        await writeAtomic(`${path}.damaged`, new Uint8Array(await readFile(path)));
        await rm(path, { force: true });
      }
    }
    if (previous && !previous.saved && previous.pid !== process.pid && alive(previous.pid)) {
      throw new HyperlabError(
        "INVALID_ARGUMENT",
        `the data root ${dataRoot} is in use by the hyperlab daemon with process id ${previous.pid}; stop it first, or give this one another --data-root`,
      );
    }
    return new DaemonState(dataRoot, previous, log);
  }

  /**
   * Brings back the previous daemon's networks and VMs into `hypervisor`:
   * restored from their snapshots after a clean stop, started fresh with
   * their containers listed as lost after a crash. Never throws for one VM:
   * what could not come back is in the report. Then starts keeping the
   * journal for this daemon.
   */
  async recover(hypervisor: Hypervisor, containers: VmContainers): Promise<Recovery> {
    const report: Recovery = { restored: [], lost: [], dropped: [] };
    const prev = this.previous;
    if (prev) {
      for (const n of prev.networks) {
        if (n.name === DEFAULT_NETWORK) continue;
        try {
          hypervisor.networks.create(n.name, { subnet: n.subnet, isolated: n.isolated });
        } catch (err) {
          report.dropped.push({ vm: `network ${n.name}`, reason: errorMessage(err) });
        }
      }
      const crashed = prev.saved
        ? undefined
        : `the daemon (process ${prev.pid}) ended without saving its VMs (it was killed, or the machine lost power) after ${prev.at}`;
      for (const j of prev.vms) {
        if (j.state === "stopped" || j.state === "destroyed") {
          report.dropped.push({ vm: j.name, reason: `it had ${j.state} before the daemon stopped` });
          continue;
        }
        const image = j.image === "default" ? undefined : j.image;
        const profile = j.profile && j.profile !== "default" ? j.profile : undefined;
        const net = j.net === NO_NETWORK || hypervisor.networks.list().some((n) => n.name === j.net) ? j.net : DEFAULT_NETWORK;
        let reason = crashed ?? (j.saveError ? `its snapshot could not be saved when the daemon stopped: ${j.saveError}` : undefined);
        if (!reason) {
          const file = this.snapshotPath(j.name);
          try {
            const vm = await hypervisor.restore(new Uint8Array(await readFile(file)), { name: j.name, image, profile, cpuShare: j.cpuShare, net, timeoutMs: RESTORE_TIMEOUT_MS });
            if (j.state === "paused") await vm.pause();
            report.restored.push(j.name);
            continue;
          } catch (err) {
            reason = isMissing(err)
              ? `its snapshot ${file} is missing`
              : `its snapshot ${file} could not be restored: ${errorMessage(err)}${err instanceof HyperlabError ? ` [${err.code}]` : ""}`;
          }
        }
        try {
          const vm = await hypervisor.createVm({ name: j.name, image, profile, memoryMiB: j.memoryMiB, cpuShare: j.cpuShare, net });
          const { records, at } = await this.readRecords(j.name);
          // Last known alive: the latest of the journal's and the records' last writes.
          const seen = new Date(Math.max(Date.parse(prev.at) || 0, at));
          if (records?.containers.length) containers.adoptLost(vm, records, `it was lost with the guest of VM ${j.name}: ${reason}`, seen);
          report.lost.push({ vm: j.name, reason, containers: records?.containers.length ?? 0 });
        } catch (err) {
          report.dropped.push({ vm: j.name, reason: `${reason}; starting it fresh failed too: ${errorMessage(err)}` });
        }
      }
      await rm(join(this.dir, "snapshots"), { recursive: true, force: true });
      await mkdir(join(this.dir, "snapshots"), { recursive: true, mode: 0o700 });
    }
    this.track(hypervisor, containers);
    return report;
  }

  /**
   * Saves every running or paused VM's snapshot and containers' records, then
   * the journal marked saved: the next start restores them. A VM whose
   * snapshot fails (or takes over a minute) is noted in the journal and
   * reported lost at the next start; the others are still saved.
   */
  async save(hypervisor: Hypervisor, containers: VmContainers): Promise<SaveReport> {
    this.stopTracking();
    const report: SaveReport = { saved: [], failed: [] };
    const saveErrors = new Map<string, string>();
    for (const vm of hypervisor.list()) {
      if (vm.state !== "running" && vm.state !== "paused") continue;
      try {
        const bytes = await withTimeout(vm.snapshot(), SAVE_TIMEOUT_MS, `the snapshot of VM ${vm.name}`);
        await writeAtomic(this.snapshotPath(vm.name), bytes);
        report.saved.push({ vm: vm.name, bytes: bytes.length });
      } catch (err) {
        saveErrors.set(vm.name, errorMessage(err));
        report.failed.push({ vm: vm.name, reason: errorMessage(err) });
      }
      await this.writeRecords(vm.name, () => containers.recordsOf(vm)).catch(() => {});
    }
    await this.writeJournal(this.journal(hypervisor, { saved: true, saveErrors }));
    return report;
  }

  /** Records that the daemon stopped and dropped its VMs on purpose (a programmatic close): the next start begins with none. */
  async forget(): Promise<void> {
    this.stopTracking();
    await Promise.all(this.recordWrites.values());
    await rm(join(this.dir, "records"), { recursive: true, force: true });
    await mkdir(join(this.dir, "records"), { recursive: true, mode: 0o700 });
    await this.writeJournal({ version: JOURNAL_VERSION, pid: process.pid, saved: true, at: new Date().toISOString(), vms: [], networks: [] });
  }

  /** Stops keeping the journal (what was written stays). */
  close(): void {
    this.stopTracking();
  }

  /** Keeps the journal and each VM's records up to date from now on. */
  private track(hypervisor: Hypervisor, containers: VmContainers): void {
    const sync = () => {
      const journal = this.journal(hypervisor, { saved: false });
      // `at` changes every time; only a change in the rest is worth a write.
      const text = JSON.stringify({ ...journal, at: "" });
      if (text !== this.journalText) {
        this.journalText = text;
        void this.writeJournal(journal).catch((err: unknown) => this.writeFailed("the VM journal", err));
      }
      for (const name of this.dirtyRecords) {
        this.dirtyRecords.delete(name);
        void this.writeRecords(name, () => {
          const vm = hypervisor.list().find((v) => v.name === name && v.state !== "destroyed");
          return vm ? containers.recordsOf(vm) : undefined;
        }).catch((err: unknown) => this.writeFailed(`the records of VM ${name}`, err));
      }
    };
    this.unsubscribe.push(
      hypervisor.onEvent((e) => {
        if (e.type === "state") {
          if (e.state === "destroyed") this.dirtyRecords.add(e.vm);
          sync();
        }
      }),
      containers.onEvent((vm) => {
        this.dirtyRecords.add(vm);
        queueMicrotask(sync);
      }),
    );
    sync();
    this.timer = setInterval(sync, JOURNAL_POLL_MS);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** Reports a journal or records write that failed (a full or read-only disk), once until one succeeds again: the daemon goes on; a crash then would lose what was not written. */
  private writeFailed(what: string, err: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.log(`hyperlab: cannot write ${what} in ${this.dir} (${errorMessage(err)}); a crash of the daemon now would lose containers' records: free space there`);
  }

  private stopTracking(): void {
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private journal(hypervisor: Hypervisor, opts: { saved: boolean; saveErrors?: Map<string, string> }): Journal {
    return {
      version: JOURNAL_VERSION,
      pid: process.pid,
      saved: opts.saved,
      at: new Date().toISOString(),
      vms: hypervisor
        .list()
        .filter((vm) => vm.state !== "destroyed")
        .map((vm) => {
          const info = vm.info();
          const saveError = opts.saveErrors?.get(vm.name);
          return {
            name: vm.name,
            image: info.image,
            profile: info.profile,
            memoryMiB: info.memoryMiB,
            cpuShare: info.cpuShare,
            net: hypervisor.networks.networkOf(vm.name)?.network ?? info.network?.name ?? NO_NETWORK,
            state: info.state,
            ...(saveError ? { saveError } : {}),
          };
        }),
      networks: hypervisor.networks.list().map((n) => ({ name: n.name, subnet: n.subnet, isolated: n.isolated })),
    };
  }

  /** Writes the journal; writes happen one at a time, in order. */
  private writeJournal(journal: Journal): Promise<void> {
    this.journalWrites = this.journalWrites
      .catch(() => {})
      .then(() => writeAtomic(join(this.dir, "daemon.json"), encoder.encode(JSON.stringify(journal, null, 1) + "\n")))
      .then(() => void (this.failing = false));
    return this.journalWrites;
  }

  /**
   * Writes (or with no records, removes) VM `name`'s records as `read` gives
   * them when the write begins. One write per VM at a time; calls made while
   * one runs share a single write after it, of the state then: a burst of
   * container events (a busy VM has several a second, each record carrying
   * its logs) is one or two writes, not one each queued with its own copy.
   */
  private writeRecords(name: string, read: () => EngineRecords | undefined): Promise<void> {
    const queued = this.recordsQueued.get(name);
    if (queued) {
      queued.read = read;
      return queued.done;
    }
    const path = join(this.dir, "records", `${name}.json`);
    const entry = { read, done: Promise.resolve() };
    entry.done = (this.recordWrites.get(name) ?? Promise.resolve())
      .catch(() => {})
      .then(() => {
        this.recordsQueued.delete(name);
        const records = entry.read();
        return records ? writeAtomic(path, encoder.encode(JSON.stringify(records))) : rm(path, { force: true });
      })
      .then(() => void (this.failing = false));
    this.recordsQueued.set(name, entry);
    this.recordWrites.set(name, entry.done);
    return entry.done;
  }

  /** VM `name`'s records as last written, and when (ms since 1970; 0 without). */
  private async readRecords(name: string): Promise<{ records?: EngineRecords; at: number }> {
    const path = join(this.dir, "records", `${name}.json`);
    try {
      const [text, s] = await Promise.all([readFile(path, "utf8"), stat(path)]);
      const r = JSON.parse(text) as EngineRecords;
      return Array.isArray(r?.containers) ? { records: r, at: s.mtimeMs } : { at: 0 };
    } catch {
      // A record file is written whole or not at all; one that is missing or unreadable leaves nothing to list.
      return { at: 0 };
    }
  }

  private snapshotPath(name: string): string {
    return join(this.dir, "snapshots", `${name}.snap`);
  }
}

/** `p`, or a TIMEOUT naming `what` after `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HyperlabError("TIMEOUT", `${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
