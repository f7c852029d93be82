import { describe, expect, it } from "vitest";
import { applyConfinement } from "../../../src/containers/confinement.ts";
import { compileSeccomp, seccompProgram } from "../../../src/containers/seccomp-bpf.ts";
import { I386_SYSCALL_NUMBERS } from "../../../src/containers/seccomp-default.ts";

/** Runs a classic BPF program over one seccomp_data as the kernel does (the opcodes the compiler emits). */
function run(program: Array<[number, number, number, number]>, nr: number, args: number[] = [], arch = 0x40000003): number {
  let a = 0;
  for (let pc = 0; pc < program.length; pc++) {
    const [code, jt, jf, k] = program[pc]!;
    switch (code) {
      case 0x20: // ld [k]: nr, arch, an argument's low half (high halves are 0 on i386)
        if (k === 0) a = nr;
        else if (k === 4) a = arch;
        else if (k >= 16 && (k - 16) % 8 === 0) a = (args[(k - 16) / 8] ?? 0) >>> 0;
        else throw new Error(`load at ${k}`);
        break;
      case 0x54:
        a = (a & k) >>> 0;
        break;
      case 0x15:
        pc += a === k ? jt : jf;
        break;
      case 0x25:
        pc += a > k ? jt : jf;
        break;
      case 0x35:
        pc += a >= k ? jt : jf;
        break;
      case 0x05:
        pc += k;
        break;
      case 0x06:
        return k;
      default:
        throw new Error(`opcode ${code}`);
    }
  }
  throw new Error("fell off the end");
}

const ALLOW = 0x7fff0000;
const EPERM = 0x00050001;
const nr = (name: string) => I386_SYSCALL_NUMBERS[name]!;

describe("Docker's default profile compiled for crun", () => {
  const program = seccompProgram(applyConfinement().seccomp!)!;

  it("decides each syscall as the profile says", () => {
    for (const name of ["read", "write", "execve", "mmap2", "socketcall", "ipc", "exit_group", "chroot", "ptrace", "futex_time64"]) expect(run(program, nr(name)), name).toBe(ALLOW);
    for (const name of ["unshare", "mount", "setns", "keyctl", "add_key", "reboot", "init_module", "bpf", "arch_prctl", "syslog"]) expect(run(program, nr(name)), name).toBe(EPERM);
    // Numbers the kernel does not have: the default.
    expect(run(program, 9999)).toBe(EPERM);
  });

  it("allows every name the profile allows outright, and nothing else", () => {
    const allowed = new Set(applyConfinement().seccomp!.syscalls.filter((r) => r.action === "SCMP_ACT_ALLOW" && !r.args).flatMap((r) => r.names));
    for (const [name, n] of Object.entries(I386_SYSCALL_NUMBERS)) {
      if (["clone", "socket", "personality", "clone3"].includes(name)) continue;
      expect(run(program, n), name).toBe(allowed.has(name) ? ALLOW : EPERM);
    }
  });

  it("tests arguments: clone without namespace flags, socket families, personality values", () => {
    expect(run(program, nr("clone"), [0x01200011])).toBe(ALLOW); // fork: SIGCHLD|CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID
    expect(run(program, nr("clone"), [0x10000000 | 17])).toBe(EPERM); // CLONE_NEWUSER
    expect(run(program, nr("clone3"))).toBe(0x00050000 | 38); // ENOSYS: libc falls back to clone
    expect(run(program, nr("socket"), [2])).toBe(ALLOW); // AF_INET
    expect(run(program, nr("socket"), [39])).toBe(ALLOW);
    expect(run(program, nr("socket"), [40])).toBe(EPERM); // AF_VSOCK
    expect(run(program, nr("socket"), [38])).toBe(EPERM);
    expect(run(program, nr("personality"), [0])).toBe(ALLOW);
    expect(run(program, nr("personality"), [0xffffffff])).toBe(ALLOW);
    expect(run(program, nr("personality"), [1])).toBe(EPERM);
  });

  it("kills a process of another architecture", () => {
    expect(run(program, nr("read"), [], 0xc000003e)).toBe(0);
  });

  it("follows the capabilities as libseccomp would: SYS_ADMIN allows mount and any clone", () => {
    const admin = seccompProgram(applyConfinement({ capAdd: ["CAP_SYS_ADMIN"] }).seccomp!)!;
    expect(run(admin, nr("mount"))).toBe(ALLOW);
    expect(run(admin, nr("clone"), [0x10000000])).toBe(ALLOW);
    expect(run(admin, nr("clone3"))).toBe(ALLOW);
  });

  it("is base64 of 8-byte instructions, and leaves what it cannot compile to the runtime", () => {
    const b64 = compileSeccomp(applyConfinement().seccomp!)!;
    expect(atob(b64).length).toBe(program.length * 8);
    expect(program.length).toBeLessThan(1200);
    expect(compileSeccomp({ defaultAction: "SCMP_ACT_NOTIFY", architectures: ["SCMP_ARCH_X86"], syscalls: [] })).toBeUndefined();
    expect(compileSeccomp({ defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86"], syscalls: [{ names: ["accept"], action: "SCMP_ACT_ERRNO" }] })).toBeUndefined();
    const own = seccompProgram({ defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86"], syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1 }] })!;
    expect(run(own, nr("mkdir"))).toBe(EPERM);
    expect(run(own, nr("read"))).toBe(ALLOW);
  });
});
