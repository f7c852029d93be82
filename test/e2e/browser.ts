// What the browser tests share: the built site on a local server, Debian's
// Chromium driven by playwright-core (never a downloaded browser), waits that
// name what they waited for, and screenshots saved as test artifacts.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BrowserContext, type Page, type Worker, chromium } from "playwright-core";
import { type SiteServer, serveSite } from "../../src/web/site-server.ts";

/** Debian's Chromium (`apt-get install chromium`). */
export const CHROMIUM = process.env.HYPERLAB_CHROMIUM ?? "/usr/bin/chromium";

/** Where screenshots go (gitignored; CI keeps the folder as an artifact). */
export const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));

/** The kernel release the guest reports, from the committed image's manifest. */
export const KERNEL_RELEASE: string = (
  JSON.parse(readFileSync(fileURLToPath(new URL("../../guest-images/dist/manifest.json", import.meta.url)), "utf8")) as { kernel: { release: string } }
).kernel.release;

/** Flags for a quiet, isolated headless Chromium that fetches nothing on its own. */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A browser with a fresh profile and the built site served locally. */
export interface Lab {
  site: SiteServer;
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** Serves dist/ and opens Chromium with a fresh profile. Needs `npm run build` first. */
export async function openLab(opts: { viewport?: { width: number; height: number } } = {}): Promise<Lab> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install it with 'apt-get install -y chromium' (or set HYPERLAB_CHROMIUM)`);
  const site = await serveSite({ port: 0 });
  const profile = mkdtempSync(join(tmpdir(), "hyperlab-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_FLAGS,
    viewport: opts.viewport ?? { width: 1280, height: 760 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    site,
    context,
    page,
    close: async () => {
      await context.close();
      await site.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Saves a screenshot of the page as test/e2e/artifacts/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** The text a <hyperlab-vm> shows in its terminal, its state, and its error text. */
export async function vmView(page: Page, selector: string): Promise<{ state?: string; errorCode?: string; error: string; text: string }> {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel) as (HTMLElement & { terminalText(): string }) | null;
    if (!el) return { error: `no element ${sel}`, text: "" };
    return {
      state: el.dataset.state,
      errorCode: el.dataset.errorCode,
      error: el.shadowRoot?.querySelector(".error")?.textContent ?? "",
      text: el.terminalText(),
    };
  }, selector);
}

/**
 * Waits until `test` holds for the element's view; on timeout fails naming
 * `what` and showing what the element showed.
 */
export async function waitForVm(
  page: Page,
  selector: string,
  what: string,
  test: (view: Awaited<ReturnType<typeof vmView>>) => boolean,
  timeoutMs: number,
): Promise<Awaited<ReturnType<typeof vmView>>> {
  const deadline = Date.now() + timeoutMs;
  let view = await vmView(page, selector);
  while (!test(view)) {
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} in ${selector}; it is in state ${view.state ?? "?"}` +
          `${view.error ? `, showing the error: ${view.error}` : ""}; its terminal ends with:\n${view.text.slice(-800)}`,
      );
    }
    await page.waitForTimeout(100);
    view = await vmView(page, selector);
  }
  return view;
}

/** Waits for the element's shell prompt (state ready); fails early if it shows an error. */
export async function waitForPrompt(page: Page, selector: string, timeoutMs = 90_000): Promise<void> {
  const view = await waitForVm(page, selector, "the shell prompt", (v) => v.state === "ready" || v.state === "error", timeoutMs);
  if (view.state === "error") throw new Error(`${selector} showed an error instead of a prompt: ${view.error}`);
}

/** Types a line into the element's console terminal (as a user would: focus it, then keys). */
export async function typeLine(page: Page, selector: string, line: string): Promise<void> {
  await page.locator(`${selector} .pane[data-terminal="console"] .xterm-helper-textarea`).focus();
  await page.keyboard.type(line);
  await page.keyboard.press("Enter");
}

/** The shell's prompt at the end of the terminal: the command has finished. */
const PROMPT_AT_END = /\n[^\n]*@[^\n]*[#$] ?$/;

/** Types a command and waits until its output matches `expected` and the next prompt is shown. */
export async function run(page: Page, selector: string, command: string, expected: RegExp, timeoutMs = 30_000): Promise<string> {
  const before = (await vmView(page, selector)).text.length;
  await typeLine(page, selector, command);
  const view = await waitForVm(
    page,
    selector,
    `the output of '${command}' to match ${expected}, then the prompt`,
    (v) => expected.test(v.text.slice(before)) && PROMPT_AT_END.test(v.text.slice(before)),
    timeoutMs,
  );
  return view.text.slice(before);
}

/** The text of the element's terminal titled `title` (opened from the stack view), or undefined while it has none. */
export async function terminalText(page: Page, selector: string, title: string): Promise<string | undefined> {
  return page.evaluate(
    ({ sel, title }) => {
      const el = document.querySelector(sel) as (HTMLElement & { terminalTexts(): Array<{ title: string; text: string }> }) | null;
      return el?.terminalTexts().find((t) => t.title === title)?.text;
    },
    { sel: selector, title },
  );
}

/** Types a line into the element's terminal titled `title` and waits until its output matches `expected`. */
export async function runIn(page: Page, selector: string, title: string, command: string, expected: RegExp, timeoutMs = 30_000): Promise<string> {
  const before = (await terminalText(page, selector, title))?.length ?? 0;
  await page.locator(`${selector} .pane[data-terminal="${title}"] .xterm-helper-textarea`).focus();
  await page.keyboard.type(command);
  await page.keyboard.press("Enter");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = (await terminalText(page, selector, title)) ?? "";
    if (expected.test(text.slice(before))) return text.slice(before);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the output of '${command}' in the terminal '${title}' to match ${expected}; it ends with:\n${text.slice(-800)}`);
    await page.waitForTimeout(100);
  }
}

/**
 * The page's VM worker whose machine has run (spare workers have executed no
 * instruction). Each worker is asked for its counters through its own
 * Comlink API, as the host asks: the request is dispatched inside the worker
 * and the answer caught before it is posted to the page.
 */
export async function runningVmWorker(page: Page): Promise<Worker> {
  const workers = page.workers().filter((w) => /vm-worker-[\w-]+\.js$/.test(w.url()));
  for (const worker of workers) {
    const instructions = await worker
      .evaluate(
        () =>
          new Promise<number>((resolve) => {
            const g = globalThis as unknown as { postMessage(m: unknown, ...rest: unknown[]): void; dispatchEvent(e: Event): boolean };
            const post = g.postMessage;
            const done = (n: number) => {
              g.postMessage = post;
              resolve(n);
            };
            g.postMessage = (m, ...rest) => {
              const reply = m as { id?: string; value?: { instructions?: number } };
              if (reply?.id === "hyperlab-e2e-probe") done(reply.value?.instructions ?? 0);
              else post.call(g, m, ...rest);
            };
            g.dispatchEvent(new MessageEvent("message", { data: { id: "hyperlab-e2e-probe", type: "APPLY", path: ["counterSample"], argumentList: [] } }));
            setTimeout(() => done(-1), 3000);
          }),
      )
      .catch(() => -1);
    if (instructions > 0) return worker;
  }
  throw new Error(`none of the page's ${workers.length} VM workers has run a machine`);
}
