// Terminals: xterm.js, fitted to its box, with keystrokes going to the guest
// and the box's size going to the guest's tty. One kind of terminal for a
// VM's serial console and for a shell in a container (a process on a
// pseudo-terminal, through the agent).
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import xtermCss from "@xterm/xterm/css/xterm.css?inline";
import type { GuestProcess } from "../guest/agent.ts";
import type { PageVm } from "./page-vm.ts";

/** xterm's own stylesheet, for a shadow root (document styles do not reach inside one). */
export const TERMINAL_CSS = xtermCss;

/** What a terminal is connected to: output to show, and where keys and sizes go. */
export interface TerminalIo {
  /** calls `write` with each piece of output; returns an unsubscribe function */
  output(write: (data: string | Uint8Array) => void): () => void;
  /** what the user typed or pasted */
  input(data: string): void;
  /** the terminal's size changed */
  resize(rows: number, cols: number): void;
}

/** A page VM's serial console (the VM tells its guest tty the size through the agent). */
export function consoleIo(vm: PageVm): TerminalIo {
  return {
    output: (write) => vm.on((e) => e.type === "console" && write(e.data)),
    input: (data) => vm.write(data),
    resize: (rows, cols) => vm.resize(rows, cols),
  };
}

/** A guest process on a pseudo-terminal (its one output stream is the terminal's). */
export function processIo(proc: GuestProcess): TerminalIo {
  return {
    output: (write) => {
      let on = true;
      proc.onOutput((_stream, data) => on && write(data));
      return () => void (on = false);
    },
    input: (data) => proc.write(data),
    resize: (rows, cols) => void proc.resize(rows, cols).catch(() => {}),
  };
}

/** A terminal in a box, connected to a console or a process. */
export class TerminalView {
  readonly term: Terminal;
  private readonly fit = new FitAddon();
  private readonly observer: ResizeObserver;
  private readonly offs: Array<() => void> = [];

  /** Opens a terminal in `box` (an element with a size) and connects it to `io`. */
  constructor(
    private readonly box: HTMLElement,
    io: TerminalIo,
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
    // Output comes in batches from the VM's worker (one message per few ms or KiB, or per agent frame), never per byte.
    this.offs.push(io.output((data) => this.term.write(data)));
    const input = this.term.onData((data) => io.input(data));
    const size = this.term.onResize(({ rows, cols }) => io.resize(rows, cols));
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
    io.resize(this.term.rows, this.term.cols);
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

  /** Writes text of the page's own (a notice, not guest output) into the terminal. */
  notice(text: string): void {
    this.term.write(`\r\n\x1b[2m${text.replace(/\n/g, "\r\n")}\x1b[0m\r\n`);
  }

  /** Re-fits the terminal to its box (after the box was shown again). */
  refresh(): void {
    this.refit();
  }

  /** Detaches from its console or process and frees the terminal. */
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

/** The terminal on a page VM's serial console. */
export class VmTerminal extends TerminalView {
  constructor(box: HTMLElement, vm: PageVm) {
    super(box, consoleIo(vm));
  }
}
