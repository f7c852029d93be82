// <hyperlab-lab src="lab.md">: a course lab (docs/labs.md) beside the
// terminal of its own <hyperlab-vm>. The steps are on the left; each check
// is ticked as it passes, re-checked when the shell's prompt comes back
// after a command (never by polling the guest); hints come one by one on
// request. The learner's progress and the VM's state (a delta snapshot) are
// kept in IndexedDB and brought back on reload; "Download my work" saves the
// whole VM state for grading (`hyperlab lab run --snapshot`). The lab's text
// is Markdown rendered with raw HTML off: nothing in a lab file can put
// markup or script into the page.
import { HyperlabError, isHyperlabError } from "../errors.ts";
import type { Lab, LabStep } from "../labs/lab.ts";
import { LabSession, type StepOutcome, assertSnapshotOfLab } from "../labs/lab-session.ts";
import { type HyperlabVmElement, defineHyperlabVm } from "./hyperlab-vm.ts";
import { clearProgress, loadProgress, saveProgress } from "./lab-store.ts";
import { pageDocker } from "./page-docker.ts";
import { pageHost } from "./page-host.ts";
import { PROMPT } from "./page-vm.ts";

const STYLE = `
:host { display: block; font: 14px/1.45 system-ui, sans-serif; color: #1d2330; }
.lab { display: flex; gap: 0; height: 100%; min-height: 420px; border: 1px solid #c9d1dc; border-radius: 8px; overflow: hidden; }
.steps { width: 40%; min-width: 280px; max-width: 560px; overflow: auto; padding: 10px 14px; background: #fbfcfd; border-right: 1px solid #c9d1dc; }
.machine { flex: 1; min-width: 0; display: flex; }
.machine ::slotted(hyperlab-vm) { flex: 1; border: 0; }
header { display: flex; align-items: baseline; gap: 10px; }
h2 { font-size: 17px; margin: 4px 0 8px; }
.count { margin-left: auto; color: #2f6f3e; font-variant-numeric: tabular-nums; white-space: nowrap; }
.status { color: #4a5568; font-style: italic; }
.status:empty { display: none; }
.error { white-space: pre-wrap; background: #fff4f2; color: #7a1c12; border: 1px solid #e7b4aa; border-radius: 6px; padding: 8px 10px; font: 12px ui-monospace, monospace; }
.error:empty { display: none; }
ol.step-list { list-style: none; padding: 0; margin: 8px 0; }
li.step { border: 1px solid #dde3ea; border-radius: 6px; padding: 6px 10px; margin: 8px 0; background: #fff; }
li.step.current { border-color: #7aa7e0; box-shadow: 0 0 0 2px #e3edfa; }
li.step[data-passed="true"] { border-color: #9fd3ad; background: #f4fbf6; }
li.step h3 { font-size: 15px; margin: 4px 0; }
li.step[data-passed="true"] h3::before { content: "✓ "; color: #2f8f46; }
ul.checks { list-style: none; padding: 0; margin: 6px 0; }
ul.checks li { margin: 3px 0; font-size: 13px; }
ul.checks li .mark { display: inline-block; width: 1.3em; }
ul.checks li[data-status="pass"] .mark { color: #2f8f46; }
ul.checks li[data-status="fail"] .mark { color: #b04a3c; }
ul.checks li .reason { display: block; margin-left: 1.3em; color: #7a4a40; font: 12px ui-monospace, monospace; white-space: pre-wrap; }
ul.checks li[data-status="pass"] .reason { display: none; }
.hints .hint { background: #fffbea; border-left: 3px solid #e0c060; padding: 2px 8px; margin: 4px 0; }
button { font: 13px system-ui, sans-serif; padding: 2px 10px; }
footer { display: flex; gap: 8px; margin: 10px 0; }
pre { background: #f0f2f5; padding: 6px 8px; border-radius: 4px; overflow: auto; font-size: 12px; }
code { font: 12px ui-monospace, monospace; }
`;

/** How long after the prompt comes back the checks run (a burst of prompts is checked once). */
const CHECK_DELAY_MS = 250;
/** How long after a check round the VM's state is saved in the browser. */
const SAVE_DELAY_MS = 1000;

/** The shell's prompt at the end of what the console printed: a command has finished. */
const PROMPT_AT_END = new RegExp(`(?:${PROMPT.source})$`);

/**
 * The `<hyperlab-lab>` element. Attribute `src`: the lab file's URL
 * (relative to the page). The lab starts when the element is added to the
 * page; its VM is destroyed when the element is removed.
 */
export class HyperlabLabElement extends HTMLElement {
  private readonly root: ShadowRoot;
  private readonly parts: { title: HTMLElement; count: HTMLElement; status: HTMLElement; error: HTMLElement; intro: HTMLElement; steps: HTMLOListElement; download: HTMLButtonElement; reset: HTMLButtonElement };
  private lab: Lab | undefined;
  private key = "";
  private render: ((markdown: string) => string) | undefined;
  private vmEl: HyperlabVmElement | undefined;
  private session: LabSession | undefined;
  private passed = new Set<number>();
  private hints: Record<number, number> = {};
  private readonly outcomes = new Map<number, StepOutcome>();
  private consoleTail = "";
  private checking = false;
  private checkAgain = false;
  private checkTimer: ReturnType<typeof setTimeout> | undefined;
  private saveTimer: ReturnType<typeof setTimeout> | undefined;
  private saving: Promise<void> = Promise.resolve();
  private generation = 0;
  private started = false;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.root.innerHTML = `<style>${STYLE}</style>
<div class="lab">
  <section class="steps" part="steps">
    <header><h2 class="title"></h2><span class="count"></span></header>
    <div class="status"></div>
    <div class="error"></div>
    <div class="intro"></div>
    <ol class="step-list"></ol>
    <footer><button class="download" disabled>Download my work</button><button class="reset" disabled>Start over</button></footer>
  </section>
  <div class="machine"><slot></slot></div>
</div>`;
    const q = <T extends HTMLElement>(sel: string) => this.root.querySelector(sel) as T;
    this.parts = {
      title: q(".title"),
      count: q(".count"),
      status: q(".status"),
      error: q(".error"),
      intro: q(".intro"),
      steps: q("ol.step-list"),
      download: q("button.download"),
      reset: q("button.reset"),
    };
    this.parts.download.addEventListener("click", () => void this.download());
    this.parts.reset.addEventListener("click", () => void this.startOver());
  }

  connectedCallback(): void {
    if (this.started) return;
    this.started = true;
    void this.load();
  }

  disconnectedCallback(): void {
    queueMicrotask(() => {
      if (!this.isConnected) this.teardown();
    });
  }

  /** The lab as read from its file (undefined until loaded). */
  get labModel(): Lab | undefined {
    return this.lab;
  }

  /** The numbers of the steps passed so far. */
  get passedSteps(): number[] {
    return [...this.passed].sort((a, b) => a - b);
  }

  /** Reads the lab, restores the learner's saved work if there is some, and starts the VM. */
  private async load(): Promise<void> {
    const generation = ++this.generation;
    this.dataset.state = "loading";
    this.status("Loading the lab…");
    try {
      const src = this.getAttribute("src");
      if (!src) throw new HyperlabError("INVALID_ARGUMENT", "<hyperlab-lab> needs a src attribute: the URL of the lab file");
      const url = new URL(src, document.baseURI);
      const res = await fetch(url).catch((err: unknown) => {
        throw new HyperlabError("INVALID_ARGUMENT", `the lab file ${url.href} could not be fetched: ${(err as Error).message}`);
      });
      if (!res.ok) throw new HyperlabError("INVALID_ARGUMENT", `the lab file ${url.href} could not be fetched: HTTP ${res.status}`);
      // The parser (markdown-it, yaml) is loaded only by pages that have a lab.
      const { parseLab, renderLabMarkdown } = await import("../labs/parse-lab.ts");
      const lab = parseLab(await res.text(), src);
      if (generation !== this.generation) return;
      this.lab = lab;
      this.render = renderLabMarkdown;
      this.key = `${url.href}#${lab.id}`;
      const saved = await loadProgress(this.key).catch(() => undefined);
      let state: Uint8Array | undefined;
      if (saved) {
        try {
          assertSnapshotOfLab(saved.state, lab, "the work saved in this browser");
          state = saved.state;
          this.passed = new Set(saved.passed);
          this.hints = { ...saved.hints };
        } catch {
          await clearProgress(this.key).catch(() => {});
        }
      }
      this.draw();
      this.startVm(lab, state);
    } catch (err) {
      this.showError(err);
    }
  }

  /** Adds the lab's <hyperlab-vm> (restored from `state` when given) and follows it. */
  private startVm(lab: Lab, state: Uint8Array | undefined): void {
    defineHyperlabVm();
    const vmEl = document.createElement("hyperlab-vm") as HyperlabVmElement;
    vmEl.setAttribute("memory", String(lab.machine.memoryMiB));
    if (lab.machine.image !== "default") vmEl.setAttribute("image", lab.machine.image);
    vmEl.state = state;
    this.vmEl = vmEl;
    this.append(vmEl);
    this.status(state ? "Bringing back your machine…" : "Starting the machine…");
    const pageVm = vmEl.pageVm;
    if (!pageVm) return this.showError(new HyperlabError("VM_INVALID_STATE", "the lab's VM did not start"));
    const generation = this.generation;
    pageVm.on((e) => {
      if (generation !== this.generation) return;
      if (e.type === "phase" && e.phase === "ready") void this.onReady(!!state);
      else if (e.type === "console") this.onConsole(e.data);
      else if (e.type === "error") {
        this.dataset.state = "error";
        this.status("The machine stopped: see its message. Start over for a new one.");
      }
    });
  }

  /** The VM runs: setup (a fresh machine only), then the first check round. */
  private async onReady(restored: boolean): Promise<void> {
    const lab = this.lab!;
    const pageVm = this.vmEl?.pageVm;
    const vm = pageVm?.handle;
    if (!pageVm || !vm) return;
    // A lab that teaches push and pull has a registry of its own (in the page's memory; a reload starts it empty).
    if (lab.machine.registry) await pageDocker(await pageHost().hypervisor).giveRegistry(vm.name, lab.machine.registry);
    const session = new LabSession(lab, vm, pageVm.containers().engine);
    session.markPassed(this.passedSteps);
    if (!restored && lab.setup.length) {
      this.dataset.state = "preparing";
      this.status("Preparing the lab…");
      try {
        await session.setup();
      } catch (err) {
        return this.showError(err);
      }
    }
    this.session = session;
    this.dataset.state = "ready";
    this.status("");
    this.parts.download.disabled = false;
    this.parts.reset.disabled = false;
    await this.checkNow();
  }

  /** Console output: when the prompt comes back at its end, a command has finished and the checks run. */
  private onConsole(data: string): void {
    this.consoleTail = (this.consoleTail + data).slice(-400);
    if (this.session && PROMPT_AT_END.test(this.consoleTail)) {
      clearTimeout(this.checkTimer);
      this.checkTimer = setTimeout(() => void this.checkNow(), CHECK_DELAY_MS);
    }
  }

  /** Runs the checks of every step not passed yet (one round at a time), redraws, and saves soon after. */
  private async checkNow(): Promise<void> {
    const session = this.session;
    if (!session) return;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = true;
    this.dataset.checking = "true";
    try {
      for (const step of this.lab!.steps) {
        if (this.passed.has(step.number)) continue;
        const outcome = await session.check(step);
        if (session !== this.session) return;
        this.outcomes.set(step.number, outcome);
        if (outcome.passed) this.passed.add(step.number);
        this.drawStep(step);
      }
      this.drawCount();
      this.dataset.rounds = String(Number(this.dataset.rounds ?? 0) + 1);
    } catch {
      // The VM went away mid-round (start over, an error): its own message says so.
    } finally {
      this.checking = false;
      delete this.dataset.checking;
    }
    this.saveSoon();
    if (this.checkAgain) {
      this.checkAgain = false;
      void this.checkNow();
    }
  }

  /** Saves the VM's state and the progress in this browser, a moment after the last check round. */
  private saveSoon(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => {
      const session = this.session;
      if (!session) return;
      const round = this.dataset.rounds ?? "0";
      this.saving = this.saving.then(async () => {
        try {
          const state = await session.saveState();
          if (session !== this.session) return;
          await saveProgress(this.key, { state, passed: this.passedSteps, hints: { ...this.hints }, savedAt: new Date().toISOString() });
          // Which check round the kept state is from (tests wait for it before reloading).
          this.dataset.savedRound = round;
        } catch (err) {
          if (session === this.session) this.status(`Your work could not be kept in this browser: ${(err as Error).message}`);
        }
      });
    }, SAVE_DELAY_MS);
  }

  /** "Download my work": the whole VM state, for grading with `hyperlab lab run --snapshot`. */
  private async download(): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.parts.download.disabled = true;
    try {
      const bytes = await session.saveState({ full: true });
      const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: "application/octet-stream" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `${this.lab!.id}.snap`;
      this.root.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      this.status(`Your work could not be saved: ${(err as Error).message}`);
    } finally {
      this.parts.download.disabled = false;
    }
  }

  /** Forgets the saved work and starts the lab again on a fresh VM. */
  private async startOver(): Promise<void> {
    this.teardown();
    await clearProgress(this.key).catch(() => {});
    this.passed.clear();
    this.hints = {};
    this.outcomes.clear();
    this.parts.error.textContent = "";
    await this.load();
  }

  private teardown(): void {
    this.generation++;
    clearTimeout(this.checkTimer);
    clearTimeout(this.saveTimer);
    this.session = undefined;
    this.parts.download.disabled = true;
    this.parts.reset.disabled = true;
    this.vmEl?.remove();
    this.vmEl = undefined;
    this.consoleTail = "";
  }

  private status(text: string): void {
    this.parts.status.textContent = text;
  }

  private showError(err: unknown): void {
    this.dataset.state = "error";
    this.status("");
    const code = isHyperlabError(err) ? err.code : "ERROR";
    this.dataset.errorCode = code;
    this.parts.error.textContent = `${(err as Error)?.message ?? String(err)} [${code}]`;
  }

  /** Draws the whole lab: title, intro and steps (lab text rendered without HTML). */
  private draw(): void {
    const lab = this.lab!;
    this.parts.title.textContent = lab.title;
    this.parts.intro.innerHTML = this.render!(lab.intro);
    this.parts.steps.replaceChildren(
      ...lab.steps.map((step) => {
        const li = document.createElement("li");
        li.className = "step";
        li.dataset.step = String(step.number);
        const h3 = document.createElement("h3");
        h3.textContent = `Step ${step.number}: ${step.title}`;
        const text = document.createElement("div");
        text.className = "text";
        text.innerHTML = this.render!(step.text);
        const checks = document.createElement("ul");
        checks.className = "checks";
        const hints = document.createElement("div");
        hints.className = "hints";
        const hint = document.createElement("button");
        hint.className = "hint";
        hint.addEventListener("click", () => {
          this.hints[step.number] = Math.min(step.hints.length, (this.hints[step.number] ?? 0) + 1);
          this.drawStep(step);
          this.saveSoon();
        });
        li.append(h3, text, checks, hints, hint);
        return li;
      }),
    );
    for (const step of lab.steps) this.drawStep(step);
    this.drawCount();
  }

  /** Redraws one step: its checks' ticks and reasons, its hints, whether it is passed or current. */
  private drawStep(step: LabStep): void {
    const li = this.parts.steps.querySelector<HTMLLIElement>(`li.step[data-step="${step.number}"]`);
    if (!li) return;
    const passed = this.passed.has(step.number);
    li.dataset.passed = String(passed);
    const outcome = this.outcomes.get(step.number);
    const checks = li.querySelector("ul.checks")!;
    checks.replaceChildren(
      ...step.checks.map((check, i) => {
        const item = document.createElement("li");
        const result = outcome?.checks[i];
        const status = passed ? "pass" : result ? (result.passed ? "pass" : "fail") : "pending";
        item.dataset.status = status;
        const mark = document.createElement("span");
        mark.className = "mark";
        mark.textContent = status === "pass" ? "✓" : status === "fail" ? "✗" : "○";
        const title = document.createElement("span");
        title.className = "title";
        title.textContent = check.title;
        item.append(mark, title);
        if (status === "fail" && result?.reason) {
          const reason = document.createElement("span");
          reason.className = "reason";
          reason.textContent = result.reason;
          item.append(reason);
        }
        return item;
      }),
    );
    const shown = this.hints[step.number] ?? 0;
    li.querySelector(".hints")!.replaceChildren(
      ...step.hints.slice(0, shown).map((h) => {
        const div = document.createElement("div");
        div.className = "hint";
        div.innerHTML = this.render!(h);
        return div;
      }),
    );
    const button = li.querySelector<HTMLButtonElement>("button.hint")!;
    button.hidden = shown >= step.hints.length;
    button.textContent = shown === 0 ? "Show a hint" : `Another hint (${step.hints.length - shown} left)`;
    const current = this.lab!.steps.find((s) => !this.passed.has(s.number));
    for (const other of this.parts.steps.querySelectorAll("li.step")) other.classList.toggle("current", (other as HTMLElement).dataset.step === String(current?.number));
  }

  private drawCount(): void {
    const lab = this.lab!;
    this.parts.count.textContent = `${this.passed.size} of ${lab.steps.length} steps done`;
    this.dataset.passed = this.passedSteps.join(",");
  }
}

/** Registers `<hyperlab-lab>` (and `<hyperlab-vm>`, which it uses); twice is a no-op. */
export function defineHyperlabLab(name = "hyperlab-lab"): void {
  defineHyperlabVm();
  if (!customElements.get(name)) customElements.define(name, HyperlabLabElement);
}
