// The VM lifecycle as data: which state may follow which. Every VM method
// checks its move here, so an illegal call fails the same way everywhere.
import { HyperlabError } from "../errors.ts";

/** Where a VM is in its life: `created → booting → running ⇄ paused → stopped`, and `destroyed` from any. */
export type VmState = "created" | "booting" | "running" | "paused" | "stopped" | "destroyed";

/** Every state, in lifecycle order. */
export const VM_STATES: readonly VmState[] = ["created", "booting", "running", "paused", "stopped", "destroyed"];

/** For each state, the states it may move to. */
const NEXT: Readonly<Record<VmState, readonly VmState[]>> = {
  created: ["booting", "stopped", "destroyed"],
  booting: ["running", "stopped", "destroyed"],
  running: ["paused", "stopped", "destroyed"],
  paused: ["running", "stopped", "destroyed"],
  stopped: ["destroyed"],
  destroyed: [],
};

/** True when a VM in state `from` may move to `to`. */
export function canTransition(from: VmState, to: VmState): boolean {
  return NEXT[from].includes(to);
}

/** The states from which a VM may move to `to` (for error messages). */
export function statesLeadingTo(to: VmState): VmState[] {
  return VM_STATES.filter((s) => canTransition(s, to));
}

/** The states in which each lifecycle action of a VM is legal (for error messages). */
export const ACTION_STATES: Readonly<Record<string, readonly VmState[]>> = {
  start: ["created"],
  pause: ["running"],
  resume: ["paused"],
  stop: ["created", "booting", "running", "paused"],
  destroy: ["created", "booting", "running", "paused", "stopped"],
};

/**
 * Throws VM_INVALID_STATE unless a VM in state `from` may move to `to`. The
 * message names the current state and, when given, the action (with the
 * states it is legal in) and the VM.
 */
export function assertTransition(from: VmState, to: VmState, context: { action?: string; vm?: string } = {}): void {
  if (canTransition(from, to)) return;
  const action = context.action ?? `move to ${to}`;
  const who = context.vm ? `VM ${context.vm}` : "the VM";
  const legal = (context.action && ACTION_STATES[context.action]) || statesLeadingTo(to);
  const hint = legal.length ? ` (${context.action ?? "that"} is legal while ${legal.join(" or ")})` : "";
  throw new HyperlabError("VM_INVALID_STATE", `cannot ${action}: ${who} is ${from}${hint}`, { state: from, to, action });
}

/**
 * Throws VM_INVALID_STATE unless `state` is one of `legal`: for methods that
 * do not change the state (exec, files, snapshot) but need it.
 */
export function assertState(state: VmState, legal: readonly VmState[], context: { action: string; vm?: string }): void {
  if (legal.includes(state)) return;
  const who = context.vm ? `VM ${context.vm}` : "the VM";
  throw new HyperlabError("VM_INVALID_STATE", `cannot ${context.action}: ${who} is ${state} (${context.action} is legal while ${legal.join(" or ")})`, {
    state,
    action: context.action,
  });
}
