// A container's seccomp filter compiled on the host into the classic BPF
// program the kernel runs, for crun to load whole (its annotation
// run.oci.seccomp_bpf_data) instead of having libseccomp build it at every
// start: in the emulated guest that build costs about 15 M instructions per
// container, three times what the rest of `run --rm busybox true` costs.
// The program is what libseccomp makes of the same rules: the architecture
// checked (i386 only, anything else killed), then the syscall number found
// in a binary tree of segments (runs of numbers decided alike), then that syscall's rules in order (argument tests ANDed
// within a rule, the first rule that holds decides), else the default action.
// i386's arguments are 32 bits (the kernel zero-extends them into
// seccomp_data's 64-bit slots), so a test reads the low half and a value
// above 32 bits makes the filter uncompilable here (undefined: libseccomp
// builds it, as before). So does a rule naming a call i386 reaches only
// through socketcall(2) or ipc(2), unless those are allowed outright.
import { bytesToBase64 } from "../bytes.ts";
import { I386_SYSCALL_NUMBERS } from "./seccomp-default.ts";
import type { OciSeccomp, SeccompArg } from "./seccomp.ts";

/** The annotation crun reads a whole filter from (base64 of struct sock_filter[]). */
export const CRUN_BPF_ANNOTATION = "run.oci.seccomp_bpf_data";

const AUDIT_ARCH_I386 = 0x40000003;
/** Offsets in struct seccomp_data. */
const NR = 0;
const ARCH = 4;
const ARG = (i: number) => 16 + 8 * i;

/** Opcodes (linux/filter.h). */
const LD_W_ABS = 0x20;
const JEQ = 0x15;
const JGT = 0x25;
const JGE = 0x35;
const JA = 0x05;
const RET = 0x06;
const AND = 0x54;

/** The return value of each action (linux/seccomp.h). */
const ACTIONS: Record<string, (errno?: number) => number> = {
  SCMP_ACT_ALLOW: () => 0x7fff0000,
  SCMP_ACT_ERRNO: (e = 1) => 0x00050000 | (e & 0xffff),
  SCMP_ACT_KILL: () => 0,
  SCMP_ACT_KILL_THREAD: () => 0,
  SCMP_ACT_KILL_PROCESS: () => 0x80000000,
  SCMP_ACT_TRAP: () => 0x00030000,
  SCMP_ACT_LOG: () => 0x7ffc0000,
};

type Insn = [code: number, jt: number, jf: number, k: number];

const ld = (off: number): Insn => [LD_W_ABS, 0, 0, off];
const ret = (k: number): Insn => [RET, 0, 0, k >>> 0];

/** A rule of one syscall: its tests and what it returns when they hold. */
interface Rule {
  args: SeccompArg[];
  ret: number;
}

/**
 * The instructions of one argument test that fall through when it holds and
 * jump `fail` instructions past their end when it does not; undefined when
 * the test cannot be compiled here.
 */
function argTest(a: SeccompArg, fail: number): Insn[] | undefined {
  const v = a.value;
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff || a.index < 0 || a.index > 5) return undefined;
  const load = ld(ARG(a.index));
  switch (a.op) {
    case "SCMP_CMP_EQ":
      return [load, [JEQ, 0, fail, v]];
    case "SCMP_CMP_NE":
      return [load, [JEQ, fail, 0, v]];
    case "SCMP_CMP_GT":
      return [load, [JGT, 0, fail, v]];
    case "SCMP_CMP_GE":
      return [load, [JGE, 0, fail, v]];
    case "SCMP_CMP_LT":
      return [load, [JGE, fail, 0, v]];
    case "SCMP_CMP_LE":
      return [load, [JGT, fail, 0, v]];
    case "SCMP_CMP_MASKED_EQ": {
      // OCI's value is the mask, valueTwo what the masked argument must equal.
      const want = a.valueTwo ?? 0;
      if (!Number.isInteger(want) || want < 0 || want > 0xffffffff) return undefined;
      return [load, [AND, 0, 0, v >>> 0], [JEQ, 0, fail, want]];
    }
    default:
      return undefined;
  }
}

/** The instructions that decide one syscall: its rules in order, then the default. */
function handler(rules: Rule[], fallback: number): Insn[] | undefined {
  const out: Insn[] = [];
  for (const r of rules) {
    if (!r.args.length) {
      out.push(ret(r.ret));
      return out;
    }
    // Built back to front: a test that fails jumps past the rest of its rule (later tests and the ret).
    let rule: Insn[] = [ret(r.ret)];
    for (let i = r.args.length - 1; i >= 0; i--) {
      const t = argTest(r.args[i]!, rule.length);
      if (!t) return undefined;
      rule = [...t, ...rule];
    }
    out.push(...rule);
  }
  out.push(ret(fallback));
  return out;
}

/**
 * The filter as crun's annotation wants it (base64 of the program), or
 * undefined when it holds something this compiler does not do (then the
 * runtime builds it from the config, as it does for runc).
 */
export function compileSeccomp(s: OciSeccomp): string | undefined {
  const program = seccompProgram(s);
  if (!program) return undefined;
  const bytes = new Uint8Array(program.length * 8);
  const view = new DataView(bytes.buffer);
  program.forEach(([code, jt, jf, k], i) => {
    view.setUint16(i * 8, code, true);
    view.setUint8(i * 8 + 2, jt);
    view.setUint8(i * 8 + 3, jf);
    view.setUint32(i * 8 + 4, k >>> 0, true);
  });
  return bytesToBase64(bytes);
}

/** The program's instructions (see compileSeccomp), for tests. */
export function seccompProgram(s: OciSeccomp): Insn[] | undefined {
  const action = (name: string, errno?: number) => ACTIONS[name]?.(errno);
  const fallback = action(s.defaultAction, s.defaultErrnoRet);
  if (fallback === undefined || s.flags?.length || s.listenerPath) return undefined;
  if (s.architectures.some((a) => a !== "SCMP_ARCH_X86")) return undefined;
  const byNr = new Map<number, Rule[]>();
  const unnumbered: string[] = [];
  for (const r of s.syscalls) {
    const k = action(r.action, r.errnoRet);
    if (k === undefined) return undefined;
    for (const name of r.names) {
      const nr = I386_SYSCALL_NUMBERS[name];
      if (nr === undefined) {
        unnumbered.push(name);
        continue;
      }
      const list = byNr.get(nr) ?? [];
      list.push({ args: r.args ?? [], ret: k });
      byNr.set(nr, list);
    }
  }
  // Calls reached through socketcall/ipc only: fine when those are allowed outright (Docker's profile).
  const allowedOutright = (name: string) => byNr.get(I386_SYSCALL_NUMBERS[name]!)?.[0]?.args.length === 0 && byNr.get(I386_SYSCALL_NUMBERS[name]!)![0]!.ret === ACTIONS.SCMP_ACT_ALLOW!();
  if (unnumbered.length && !(allowedOutright("socketcall") && allowedOutright("ipc"))) return undefined;
  const handlers = new Map<number, Insn[]>();
  for (const [nr, rules] of byNr) {
    const h = handler(rules, fallback);
    if (!h) return undefined;
    handlers.set(nr, h);
  }
  // The numbers split into segments of one decision each (a run of calls allowed outright is one
  // segment, so is a gap that takes the default), found in a binary tree of their first numbers:
  // Docker's profile is 343 calls allowed outright in 58 runs, so the tree has ~130 leaves, not ~350.
  const top = Math.max(0, ...handlers.keys()) + 1;
  const segments: Array<{ first: number; insns: Insn[]; key: string }> = [];
  for (let n = 0; n <= top; n++) {
    const insns = handlers.get(n) ?? [ret(fallback)];
    const key = JSON.stringify(insns);
    if (segments.at(-1)?.key !== key) segments.push({ first: n, insns, key });
  }
  const tree = (lo: number, hi: number): Insn[] => {
    if (hi - lo === 1) return segments[lo]!.insns;
    const mid = (lo + hi) >> 1;
    const left = tree(lo, mid);
    const right = tree(mid, hi);
    // nr >= the right half's first number: past the left half (a short jump where it fits).
    if (left.length <= 255) return [[JGE, left.length, 0, segments[mid]!.first], ...left, ...right];
    return [[JGE, 0, 1, segments[mid]!.first], [JA, 0, 0, left.length], ...left, ...right];
  };
  const program: Insn[] = [ld(ARCH), [JEQ, 1, 0, AUDIT_ARCH_I386], ret(0), ld(NR), ...tree(0, segments.length)];
  if (program.length > 4096) return undefined;
  // Short jumps hold 8 bits: a handler longer than that is left to libseccomp.
  if (program.some(([code, jt, jf]) => code !== JA && (jt > 255 || jf > 255))) return undefined;
  return program;
}
