// The terminal on a VM's serial console: xterm.js, fitted to its box, with
// keystrokes going to the guest and the box's size going to the guest's tty.
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import xtermCss from "@xterm/xterm/css/xterm.css?inline";
import type { PageVm } from "./page-vm.ts";

/** xterm's own stylesheet, for a shadow root (document styles do not reach inside one). */
export const TERMINAL_CSS = xtermCss;

/** A terminal attached to one page VM. */
export class VmTerminal {
  readonly term: Terminal;
  private readonly fit = new FitAddon();
  private readonly observer: ResizeObserver;
  private readonly offs: Array<() => void> = [];

  /** Opens a terminal in `box` (an element with a size) and connects it to `vm`'s console. */
  constructor(
    private readonly box: HTMLElement,
    vm: PageVm,
  ) {
    this.term = new Terminal({
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      // Room below the baseline: at 1.0 some fonts lose the underscore.
      lineHeight: 1.2,
      cursorBlink: true,
      scrollback: 5000,
      convertEol: false,
      theme: { background: "#10141a", foreground: "#d8dee9" },
    });
    this.term.loadAddon(this.fit);
    this.term.open(box);
    // Console text comes in batches from the VM's worker (one message per few ms or KiB), never per byte.
    this.offs.push(
      vm.on((e) => {
        if (e.type === "console") this.term.write(e.data);
      }),
    );
    const input = this.term.onData((data) => vm.write(data));
    const size = this.term.onResize(({ rows, cols }) => vm.resize(rows, cols));
    this.offs.push(
      () => input.dispose(),
      () => size.dispose(),
    );
    // Copy: the selection goes to the clipboard with Ctrl+Shift+C (Ctrl+C stays the guest's interrupt); paste is the browser's own.
    this.term.attachCustomKeyEventHandler((e) => {
      if (e.type === "keydown" && e.ctrlKey && e.shiftKey && e.code === "KeyC") {
        const text = this.term.getSelection();
        if (text) void navigator.clipboard?.writeText(text).catch(() => {});
        return false;
      }
      return true;
    });
    this.observer = new ResizeObserver(() => this.refit());
    this.observer.observe(box);
    this.refit();
    vm.resize(this.term.rows, this.term.cols);
  }

  /** Rows and columns the terminal has now. */
  size(): { rows: number; cols: number } {
    return { rows: this.term.rows, cols: this.term.cols };
  }

  /** Gives the terminal the keyboard. */
  focus(): void {
    this.term.focus();
  }

  /** Everything the terminal holds (scrollback included), lines as the guest wrote them: rows the terminal wrapped are joined again. */
  text(): string {
    const buf = this.term.buffer.active;
    let out = "";
    for (let i = 0; i < buf.length; i++) {
      const line = buf.getLine(i);
      if (!line) continue;
      if (i > 0 && !line.isWrapped) out += "\n";
      out += line.translateToString(!buf.getLine(i + 1)?.isWrapped);
    }
    return out.replace(/\n+$/, "");
  }

  /** Detaches from the VM and frees the terminal. */
  dispose(): void {
    this.observer.disconnect();
    for (const off of this.offs) off();
    this.term.dispose();
  }

  private refit(): void {
    if (this.box.clientWidth === 0 || this.box.clientHeight === 0) return;
    try {
      this.fit.fit();
    } catch {
      // not laid out yet
    }
  }
}
