// The page in a real browser (Debian's Chromium, driven by playwright-core):
// time from navigation to a usable shell prompt, with a cold cache (a fresh
// browser profile) and a warm one (the same profile, the page opened again),
// and the bytes the server sent before the prompt. The page measures its own
// time to prompt (performance.now() at the prompt: ms since navigation start)
// and marks each start-up phase; the server counts body bytes on the wire.
// Needs the built site: `npm run build`.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { type SiteServer, serveSite } from "../src/web/site-server.ts";
import { type Summary, summarize, writeResult } from "./stats.ts";

const CHROMIUM = process.env.HYPERLAB_CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const PROMPT_TIMEOUT_MS = 120_000;

/** One page load until its prompt. */
interface Visit {
  promptMs: number;
  /** how the VM started: restored from the site's boot snapshot, or a kernel boot */
  start: string;
  bytes: number;
  /** ms since navigation at which each phase began (download, boot, prompt, ready) */
  phases: Record<string, number>;
}

/** Figures of one cache condition. */
export interface WebCondition {
  runs: number;
  /** navigation start → shell prompt on the page's terminal */
  prompt_ms: Summary;
  /** response body bytes the server sent before the prompt (compressed as sent) */
  transferred_bytes: Summary;
  /** navigation start → start of each phase, median of the runs */
  phases_ms: Record<string, number>;
}

/** The web benchmark's result (bench/results/web.json). */
export interface WebResult {
  name: "web";
  cold: WebCondition;
  warm: WebCondition;
  targets: { warm_ms: number; cold_ms: number; transferred_bytes: number };
  met: { warm: boolean; cold: boolean; transferred: boolean };
  /** how the page's VM started in every visit (the site's boot snapshot unless the site was built without one) */
  start: string;
}

async function visit(context: BrowserContext, site: SiteServer): Promise<Visit> {
  const page = context.pages()[0] ?? (await context.newPage());
  const before = site.bytesSent;
  await page.goto(site.url, { waitUntil: "commit" });
  let state: string | null = null;
  try {
    await page.waitForFunction(
      () => {
        const el = document.querySelector("hyperlab-vm") as HTMLElement | null;
        return el?.dataset.state === "ready" || el?.dataset.state === "error" ? el.dataset.state : false;
      },
      null,
      { timeout: PROMPT_TIMEOUT_MS, polling: 20 },
    );
    state = await page.locator("hyperlab-vm").getAttribute("data-state");
  } catch {
    throw new Error(`timed out after ${PROMPT_TIMEOUT_MS} ms waiting for the page's shell prompt`);
  }
  const bytes = site.bytesSent - before;
  if (state !== "ready") {
    const why = await page.evaluate(() => document.querySelector("hyperlab-vm")?.shadowRoot?.querySelector(".error")?.textContent ?? "");
    throw new Error(`the page showed an error instead of a prompt: ${why}`);
  }
  const promptMs = Number(await page.locator("hyperlab-vm").getAttribute("data-prompt-ms"));
  const start = (await page.locator("hyperlab-vm").getAttribute("data-start")) ?? "?";
  const phases = await page.evaluate(() =>
    Object.fromEntries(
      performance
        .getEntriesByType("mark")
        .filter((m) => m.name.startsWith("hyperlab "))
        .map((m) => [m.name.split(" ")[2]!, Math.round(m.startTime)]),
    ),
  );
  return { promptMs, start, bytes, phases };
}

async function withBrowser<T>(fn: (context: BrowserContext) => Promise<T>): Promise<T> {
  const profile = mkdtempSync(join(tmpdir(), "hyperlab-bench-chromium-"));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: FLAGS, viewport: { width: 1200, height: 760 } });
  try {
    return await fn(context);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

function condition(visits: Visit[]): WebCondition {
  const names = [...new Set(visits.flatMap((v) => Object.keys(v.phases)))];
  return {
    runs: visits.length,
    prompt_ms: summarize(visits.map((v) => v.promptMs)),
    transferred_bytes: summarize(visits.map((v) => v.bytes)),
    phases_ms: Object.fromEntries(names.map((n) => [n, summarize(visits.map((v) => v.phases[n] ?? NaN)).median])),
  };
}

/**
 * Opens the built site `runs` times with a cold cache (each in a fresh
 * profile) and `runs` times with a warm one (one profile, opened once to fill
 * its cache, then again `runs` times), and summarizes time to prompt and bytes.
 */
export async function benchWeb(runs = 3): Promise<WebResult> {
  const site = await serveSite({ port: 0 });
  try {
    const cold: Visit[] = [];
    for (let i = 0; i < runs; i++) cold.push(await withBrowser((c) => visit(c, site)));
    const warm = await withBrowser(async (c) => {
      await visit(c, site);
      const out: Visit[] = [];
      for (let i = 0; i < runs; i++) out.push(await visit(c, site));
      return out;
    });
    const result: WebResult = {
      name: "web",
      cold: condition(cold),
      warm: condition(warm),
      targets: { warm_ms: 1500, cold_ms: 3000, transferred_bytes: 12_000_000 },
      met: { warm: false, cold: false, transferred: false },
      start: [...new Set([...cold, ...warm].map((v) => (v.start === "snapshot" ? "restore of the site's boot snapshot" : v.start === "boot" ? "kernel boot" : v.start)))].join(", "),
    };
    result.met = {
      warm: result.warm.prompt_ms.median <= result.targets.warm_ms,
      cold: result.cold.prompt_ms.median <= result.targets.cold_ms,
      transferred: result.cold.transferred_bytes.median <= result.targets.transferred_bytes,
    };
    return result;
  } finally {
    await site.close();
  }
}

/** `npm run bench -- web`: writes bench/results/web.json. */
export async function run(): Promise<void> {
  const result = await benchWeb(Number(process.env.WEB_RUNS ?? 3));
  const { name, ...rest } = result;
  console.log(`web: cold ${result.cold.prompt_ms.median} ms, warm ${result.warm.prompt_ms.median} ms, ${(result.cold.transferred_bytes.median / 1e6).toFixed(1)} MB before the prompt`);
  console.log(`wrote ${writeResult(name, { runs: result.cold.runs, ...rest })}`);
}

if (process.argv[1]?.endsWith("bench/web.ts")) await run();
