// The files part of `npm run bench -- io`: a host directory served to the
// guest over the VM's 9p device (what `docker run -v /host:/path` mounts,
// before the container's bind mount, which adds nothing to a read), against
// the same work in the guest's tmpfs, in the same VM and run: sequential
// read and write of a 16 MiB file (dd, 1 MiB blocks) and `ls -R` of a tree
// of 2 000 files (40 folders of 50). Each figure is timed on the host
// around one agent exec, less the median of an exec of `true` (the exec's
// own cost); runs alternate 9p and tmpfs, so a busy host hurts both alike.
// The read/write throughput is also taken at a few msizes, to show the
// choice of the guest's mount options (src/containers/mounts.ts).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { HOST_MOUNT, HOST_MOUNT_OPTIONS } from "../src/containers/mounts.ts";
import { Hypervisor } from "../src/hypervisor/hypervisor.ts";
import type { Vm } from "../src/hypervisor/vm.ts";
import { type Summary, summarize } from "./stats.ts";

const RUNS = Number(process.env.IO_FILE_RUNS ?? 5);
const FILE_MIB = 16;
const DIRS = 40;
const FILES_PER_DIR = 50;
/** msizes for the throughput sweep (the mount's own is 512000) */
const MSIZES = (process.env.IO_MSIZES ?? "65536,131072,262144,512000").split(",").map(Number);

/** Milliseconds one `sh -c` takes in the guest, less an empty exec's. */
async function timed(vm: Vm, script: string, floorMs: number): Promise<number> {
  const t0 = performance.now();
  const r = await vm.exec(["/bin/sh", "-c", script]);
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`'${script}' failed in the guest (${r.exitCode}): ${r.stderr}`);
  return Math.max(0.1, ms - floorMs);
}

async function mount(vm: Vm, options: string): Promise<void> {
  await vm.agentRequest("umount", HOST_MOUNT, { detach: true }).catch(() => {});
  await vm.agentRequest("mkdir", HOST_MOUNT);
  await vm.agentRequest("mount", { target: HOST_MOUNT, source: "host9p", fstype: "9p", options });
}

const mbps = (ms: number) => Math.round((FILE_MIB * 1.048576 * 1000 * 10) / ms) / 10;

/** Measures and returns the figures (MB/s for read/write, ms for ls -R), 9p beside tmpfs. */
export async function measureFiles(): Promise<Record<string, unknown>> {
  const host = mkdtempSync(join(tmpdir(), "hyperlab-bench-io-"));
  const hv = await Hypervisor.create({ warmPool: 0 });
  try {
    writeFileSync(join(host, "big"), new Uint8Array(FILE_MIB << 20).fill(0x5a));
    for (let d = 0; d < DIRS; d++) {
      mkdirSync(join(host, "tree", `d${d}`), { recursive: true });
      for (let f = 0; f < FILES_PER_DIR; f++) writeFileSync(join(host, "tree", `d${d}`, `f${f}`), `file ${d}/${f}\n`);
    }
    const vm = await hv.createVm({ name: "bench-io" });
    await vm.share({ name: "bench", hostPath: host, readOnly: false });
    await mount(vm, HOST_MOUNT_OPTIONS);
    const p9 = `${HOST_MOUNT}/bench`;
    // The same file and tree in the guest's tmpfs (copied through 9p once).
    await vm.exec(["/bin/sh", "-c", `mkdir -p /tmp/bench && cp ${p9}/big /tmp/bench/big && cp -a ${p9}/tree /tmp/bench/tree`]);
    const floors: number[] = [];
    for (let i = 0; i < 9; i++) {
      const t0 = performance.now();
      await vm.exec(["/bin/true"]);
      floors.push(performance.now() - t0);
    }
    const floor = summarize(floors).median;
    const series = { p9Read: [] as number[], tmpfsRead: [] as number[], p9Write: [] as number[], tmpfsWrite: [] as number[], p9Ls: [] as number[], tmpfsLs: [] as number[] };
    for (let run = 0; run < RUNS; run++) {
      series.p9Read.push(await timed(vm, `dd if=${p9}/big of=/dev/null bs=1M 2>/dev/null`, floor));
      series.tmpfsRead.push(await timed(vm, "dd if=/tmp/bench/big of=/dev/null bs=1M 2>/dev/null", floor));
      series.p9Write.push(await timed(vm, `dd if=/dev/zero of=${p9}/written bs=1M count=${FILE_MIB} 2>/dev/null`, floor));
      series.tmpfsWrite.push(await timed(vm, `dd if=/dev/zero of=/tmp/bench/written bs=1M count=${FILE_MIB} 2>/dev/null`, floor));
      await vm.exec(["/bin/rm", "-f", `${p9}/written`, "/tmp/bench/written"]);
      series.p9Ls.push(await timed(vm, `ls -R ${p9}/tree > /dev/null`, floor));
      series.tmpfsLs.push(await timed(vm, "ls -R /tmp/bench/tree > /dev/null", floor));
    }
    const rate = (ms: number[]): Summary => {
      const s = summarize(ms);
      // The fastest run is the highest rate.
      return { min: mbps(s.max), median: mbps(s.median), max: mbps(s.min) };
    };
    const sweep: Record<string, { readMBps: number; writeMBps: number }> = {};
    for (const msize of MSIZES) {
      await mount(vm, HOST_MOUNT_OPTIONS.replace(/msize=\d+/, `msize=${msize}`));
      const reads: number[] = [];
      const writes: number[] = [];
      for (let i = 0; i < 3; i++) {
        reads.push(await timed(vm, `dd if=${p9}/big of=/dev/null bs=1M 2>/dev/null`, floor));
        writes.push(await timed(vm, `dd if=/dev/zero of=${p9}/written bs=1M count=${FILE_MIB} 2>/dev/null`, floor));
      }
      sweep[String(msize)] = { readMBps: mbps(summarize(reads).median), writeMBps: mbps(summarize(writes).median) };
    }
    const lsP9 = summarize(series.p9Ls);
    const read = rate(series.p9Read);
    const write = rate(series.p9Write);
    return {
      what: `9p (${HOST_MOUNT_OPTIONS}) vs the guest's tmpfs, same VM, ${RUNS} runs alternating; min/median/max; exec cost ${Math.round(floor)} ms subtracted`,
      readMBps: { p9: read, tmpfs: rate(series.tmpfsRead) },
      writeMBps: { p9: write, tmpfs: rate(series.tmpfsWrite) },
      lsRecursiveMs: { files: DIRS * FILES_PER_DIR, p9: lsP9, tmpfs: summarize(series.tmpfsLs) },
      msizeSweepMBps: sweep,
      targets: {
        sequentialMBps: { target: 30, read: read.median, write: write.median, met: read.median >= 30 && write.median >= 30 },
        lsRecursiveMs: { target: 1000, median: lsP9.median, met: lsP9.median <= 1000 },
      },
      loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    };
  } finally {
    await hv.close();
    rmSync(host, { recursive: true, force: true });
  }
}
