// The memory engine (assembly/, WebAssembly SIMD) against the fastest plain
// TypeScript we could write (src/hypervisor/memory-reference.ts), on the same
// 128 MiB of real guest memory in the same run, interleaved run by run.
//
// What each figure includes (GB/s = guest-memory bytes / wall time / 1e9):
// - engine, image: the memory already copied into the engine's Wasm memory
//   (MemoryImage); the copy is its own line, `copy_into_engine`.
// - engine, streamed: a plain Uint8Array, copied into the engine 128 KiB at a
//   time inside the call: the copy is included.
// - reference: plain TypeScript reading the same Uint8Array in place.
// Delta encode reads the base and the current memory (GB/s counts the
// current one only) and hashes both for the header's digests.
import { startGuest } from "../src/hypervisor/local-guest.ts";
import { loadMemoryEngine, type MemoryImage, PAGE_SIZE } from "../src/hypervisor/memory-engine.ts";
import { memoryReference as reference } from "../src/hypervisor/memory-reference.ts";
import { type Summary, summarize } from "./stats.ts";

/** Throughput of one operation by each implementation, and how they compare. */
export interface MemoryOpResult {
  description: string;
  runs: number;
  bytes: number;
  engine_image_gb_s: Summary;
  engine_streamed_gb_s: Summary;
  reference_gb_s: Summary;
  /** medians: engine (image) ÷ reference, engine (streamed) ÷ reference */
  speedup_image: number;
  speedup_streamed: number;
}

/** What benchMemory measured. */
export interface MemoryBenchResult {
  description: string;
  memory_mib: number;
  runs: number;
  guest_pages: { total: number; zero: number; nonzero: number };
  hash: MemoryOpResult;
  hash_random: MemoryOpResult;
  zero_scan: MemoryOpResult;
  delta_encode: MemoryOpResult;
  delta_decode: MemoryOpResult;
  copy_into_engine_gb_s: Summary;
  sharing_stats_ms: { engine: Summary; reference: Summary };
  delta_echo_hi: {
    description: string;
    bytes: number;
    changed_pages: number;
    zeroed_pages: number;
    percent_of_memory: number;
    percent_of_nonzero_pages: number;
  };
  targets: { engine_hash_gb_s: number; speedup_over_reference: number; delta_percent_of_full_state: number };
  /** each target against the medians of `hash` (engine image) and the echo-hi delta vs the nonzero pages */
  met: { engine_hash_gb_s: boolean; speedup_over_reference: boolean; delta_percent_of_full_state: boolean };
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

function timeMs(fn: () => unknown): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** Guest RAM before and after `echo hi`, read while paused both times. */
async function guestMemory(): Promise<{ before: Uint8Array; after: Uint8Array }> {
  const g = await startGuest();
  try {
    await g.machine.pause();
    const before = g.machine.memory().slice();
    await g.machine.resume();
    const r = await g.agent.exec(["echo", "hi"]);
    if (r.stdout !== "hi\n") throw new Error(`echo hi printed ${JSON.stringify(r.stdout)}`);
    await g.machine.pause();
    const after = g.machine.memory().slice();
    return { before, after };
  } finally {
    await g.stop();
  }
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/**
 * Runs each operation `runs` times per implementation (after one warm-up),
 * interleaved so that load from other processes hits all alike.
 */
export async function benchMemory(runs = 7): Promise<MemoryBenchResult> {
  const engine = await loadMemoryEngine("release");
  const { before, after } = await guestMemory();
  const random = randomBytes(before.byteLength);
  const bytes = before.byteLength;
  const images: MemoryImage[] = [];
  const image = (m: Uint8Array) => {
    const i = engine.load(m);
    images.push(i);
    return i;
  };
  const beforeImg = image(before);
  const afterImg = image(after);
  const randomImg = image(random);
  try {
    const gbs = (ms: number[]) => summarize(ms.map((t) => bytes / t / 1e6));
    const op = (description: string, impl: { image: () => unknown; streamed: () => unknown; reference: () => unknown }): MemoryOpResult => {
      const ms = { image: [] as number[], streamed: [] as number[], reference: [] as number[] };
      const order = ["image", "streamed", "reference"] as const;
      for (const k of order) impl[k](); // warm-up: V8 tiers the code up
      for (let i = 0; i < runs; i++) {
        for (let j = 0; j < order.length; j++) {
          const k = order[(i + j) % order.length]!;
          ms[k].push(timeMs(impl[k]));
        }
      }
      const r = { image: gbs(ms.image), streamed: gbs(ms.streamed), reference: gbs(ms.reference) };
      process.stderr.write(".");
      return {
        description,
        runs,
        bytes,
        engine_image_gb_s: r.image,
        engine_streamed_gb_s: r.streamed,
        reference_gb_s: r.reference,
        speedup_image: round(r.image.median / r.reference.median),
        speedup_streamed: round(r.streamed.median / r.reference.median),
      };
    };

    const hash = op("XXH3-64 of every 4 KiB page of 128 MiB of guest RAM after boot (most pages are zero: a zero check replaces the hash)", {
      image: () => engine.hashPages(beforeImg),
      streamed: () => engine.hashPages(before),
      reference: () => reference.hashPages(before),
    });
    const hashRandom = op("XXH3-64 of every page of 128 MiB of random bytes (no zero pages: every page is hashed in full)", {
      image: () => engine.hashPages(randomImg),
      streamed: () => engine.hashPages(random),
      reference: () => reference.hashPages(random),
    });
    const zeroScan = op("bitmap of the all-zero pages of the guest RAM", {
      image: () => engine.zeroPages(beforeImg),
      streamed: () => engine.zeroPages(before),
      reference: () => reference.zeroPages(before),
    });
    const encode = op("delta of the guest RAM after `echo hi` against before (compare pages, hash both for the digests, copy changed pages out)", {
      image: () => engine.encodeDelta(beforeImg, afterImg),
      streamed: () => engine.encodeDelta(before, after),
      reference: () => reference.encodeDelta(before, after),
    });
    const delta = engine.encodeDelta(before, after);
    const target = new Uint8Array(bytes);
    const targetImg = image(target);
    const decode = op("base + delta → memory after `echo hi` (hash and check the base, copy it, write the changed pages)", {
      image: () => engine.decodeDelta(beforeImg, delta, targetImg),
      streamed: () => engine.decodeDelta(before, delta, target),
      reference: () => reference.decodeDelta(before, delta, target),
    });

    const copyMs: number[] = [];
    for (let i = 0; i < runs; i++) copyMs.push(timeMs(() => beforeImg.set(before)));
    const hashes = [engine.hashPages(before), engine.hashPages(after)];
    const sharing = { engine: [] as number[], reference: [] as number[] };
    for (let i = 0; i < runs; i++) {
      sharing.engine.push(timeMs(() => engine.sharingStats(hashes)));
      sharing.reference.push(timeMs(() => reference.sharingStats(hashes)));
    }

    const zero = engine.zeroPages(after).count;
    const pages = bytes / PAGE_SIZE;
    const view = new DataView(delta.buffer, delta.byteOffset);
    const changed = view.getUint32(12, true);
    const stored = (delta.byteLength - 32 - changed * 4) / PAGE_SIZE;
    const zeroBefore = engine.zeroPages(before).count;
    const deltaPercent = round((delta.byteLength / ((pages - zero) * PAGE_SIZE)) * 100, 2);
    process.stderr.write("\n");
    return {
      description: "memory engine (AssemblyScript, Wasm SIMD) vs plain TypeScript on the same buffers in the same run",
      memory_mib: bytes / 2 ** 20,
      runs,
      guest_pages: { total: pages, zero: zeroBefore, nonzero: pages - zeroBefore },
      hash,
      hash_random: hashRandom,
      zero_scan: zeroScan,
      delta_encode: encode,
      delta_decode: decode,
      copy_into_engine_gb_s: summarize(copyMs.map((t) => bytes / t / 1e6)),
      sharing_stats_ms: { engine: summarize(sharing.engine), reference: summarize(sharing.reference) },
      delta_echo_hi: {
        description: "delta of guest RAM after agent.exec(['echo','hi']) against before, both read paused",
        bytes: delta.byteLength,
        changed_pages: changed,
        zeroed_pages: changed - stored,
        percent_of_memory: round((delta.byteLength / bytes) * 100, 2),
        percent_of_nonzero_pages: deltaPercent,
      },
      targets: { engine_hash_gb_s: 10, speedup_over_reference: 20, delta_percent_of_full_state: 5 },
      met: {
        engine_hash_gb_s: hash.engine_image_gb_s.median >= 10,
        speedup_over_reference: hash.speedup_image >= 20,
        delta_percent_of_full_state: deltaPercent <= 5,
      },
    };
  } finally {
    for (const i of images) i.free();
  }
}

/** Prints the memory benchmark (`npx tsx bench/memory.ts`). */
export async function run(): Promise<void> {
  const r = await benchMemory(Number(process.env.MEMORY_RUNS ?? 7));
  const line = (name: string, o: MemoryOpResult) =>
    `${name.padEnd(12)} engine image ${o.engine_image_gb_s.median} GB/s (${o.engine_image_gb_s.min}–${o.engine_image_gb_s.max}), ` +
    `streamed ${o.engine_streamed_gb_s.median} (${o.engine_streamed_gb_s.min}–${o.engine_streamed_gb_s.max}), ` +
    `TypeScript ${o.reference_gb_s.median} (${o.reference_gb_s.min}–${o.reference_gb_s.max}); ×${o.speedup_image} / ×${o.speedup_streamed}`;
  console.log(line("hash", r.hash));
  console.log(line("hash random", r.hash_random));
  console.log(line("zero scan", r.zero_scan));
  console.log(line("encode", r.delta_encode));
  console.log(line("decode", r.delta_decode));
  console.log(`copy into engine ${r.copy_into_engine_gb_s.median} GB/s; sharing stats ${r.sharing_stats_ms.engine.median} ms vs ${r.sharing_stats_ms.reference.median} ms`);
  console.log(`delta after echo hi: ${JSON.stringify(r.delta_echo_hi)}; guest pages ${JSON.stringify(r.guest_pages)}`);
  console.log(`targets met: ${JSON.stringify(r.met)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
