// What the browser tests share: the built site on a local server, Debian's
// Chromium driven by playwright-core (never a downloaded browser), waits that
// name what they waited for, and screenshots saved as test artifacts.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BrowserContext, type Page, chromium } from "playwright-core";
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

/** Types a line into the element's terminal (as a user would: focus it, then keys). */
export async function typeLine(page: Page, selector: string, line: string): Promise<void> {
  await page.locator(`${selector} .xterm-helper-textarea`).focus();
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
