// What the stack view and its panels ask of what holds them: panels take
// these instead of the view itself, so that no panel depends on the view.
import type { TerminalIo } from "../terminal.ts";

/** What the stack view asks of the element it is in. */
export interface StackHooks {
  /** opens a terminal tab titled `title` on `io`; a process's end (`exited`) is noted in it */
  openTerminal(title: string, io: TerminalIo, opts?: { exited?: Promise<{ exitCode: number; signal: number }>; close?: () => void }): void;
}

/** How a panel asks the stack view to read its layers again after an action. */
export interface Refresh {
  /** every layer now, then on the usual schedule */
  all(): Promise<void>;
  /** the Hypervisor and Hardware layers now: cheap (nothing waits for a guest), so a VM's buttons show at once that they wait */
  hypervisor(): Promise<void>;
}
