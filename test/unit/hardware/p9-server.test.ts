import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, linkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AT_REMOVEDIR, DOTL, ERRNO, P9, P9Writer, QT } from "../../../src/hardware/p9-message.ts";
import { NodeFsBackend, resolveExportRoot } from "../../../src/hardware/p9-node-fs.ts";
import { MAX_MSIZE, P9Server } from "../../../src/hardware/p9-server.ts";
import { P9TestClient, errnoName } from "./p9-client.ts";

let dir: string;
let share: string;
let other: string;
let outside: string;
let server: P9Server;
let c: P9TestClient;

/** Root fid 0; export "a" (share, writable) at fid 1; export "ro" (other, read-only) at fid 2. */
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hyperlab-p9-"));
  share = join(dir, "share");
  other = join(dir, "other");
  outside = join(dir, "outside");
  for (const d of [share, other, outside]) mkdirSync(d);
  writeFileSync(join(share, "hello.txt"), "hello from the host\n");
  mkdirSync(join(share, "sub"));
  writeFileSync(join(share, "sub", "deep.txt"), "deep");
  writeFileSync(join(other, "ro.txt"), "read only");
  writeFileSync(join(outside, "secret"), "outside the export");
  server = new P9Server(new NodeFsBackend());
  server.setExport({ name: "a", root: resolveExportRoot(share), readOnly: false });
  server.setExport({ name: "ro", root: resolveExportRoot(other), readOnly: true });
  c = new P9TestClient(server);
  c.version();
  c.attach(0);
  c.walk(0, 1, "a");
  c.walk(0, 2, "ro");
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("P9Server: sessions", () => {
  it("negotiates msize down to its maximum and speaks only 9P2000.L", () => {
    expect(c.version(8 * 1024 * 1024)).toEqual({ msize: MAX_MSIZE, version: "9P2000.L" });
    expect(c.version(65536)).toEqual({ msize: 65536, version: "9P2000.L" });
    expect(c.version(65536, "9P2000.u").version).toBe("unknown");
  });

  it("ends every fid of the old session at Tversion", () => {
    c.walk(1, 5, "hello.txt");
    c.version();
    expect(errnoName(() => c.getattr(5))).toBe("EBADF");
    expect(server.fidCount).toBe(0);
  });

  it("attaches to the synthetic root or to one export by name", () => {
    expect(c.attach(10).type).toBe(QT.DIR);
    expect(c.attach(11, "a").type).toBe(QT.DIR);
    expect(c.readdir((c.lopen(11, 0), 11)).map((e) => e.name).sort()).toEqual([".", "..", "hello.txt", "sub"]);
    expect(errnoName(() => c.attach(12, "nope"))).toBe("ENOENT");
    expect(errnoName(() => c.attach(10))).toBe("EBADF"); // fid in use
    expect(errnoName(() => c.raw(new P9Writer(P9.Tauth, 1).u32(1).str("u").str("").u32(0).finish()) && c.attach(13, "a/../ro"))).toBe("ENOENT");
  });

  it("answers Tflush at once (nothing is ever pending)", () => {
    expect(() => c.flush(3)).not.toThrow();
  });
});

describe("P9Server: the synthetic root", () => {
  it("lists one directory per export and nothing of the host", () => {
    expect(c.names(0).sort()).toEqual([".", "..", "a", "ro"]);
    expect(c.getattr(0).mode & 0o170777).toBe(0o040555);
  });

  it("stays at the root on '..' and knows no other names", () => {
    expect(c.walk(0, 20, "..", "..", "a", "hello.txt")).toHaveLength(4);
    expect(text((c.lopen(20, 0), c.read(20, 0, 100)))).toBe("hello from the host\n");
    expect(errnoName(() => c.walk(0, 21, "etc"))).toBe("ENOENT");
    expect(errnoName(() => c.walk(0, 21, "tmp"))).toBe("ENOENT");
  });

  it("refuses to make or remove anything in the root", () => {
    expect(errnoName(() => c.mkdir(0, "x"))).toBe("EACCES");
    expect(errnoName(() => c.lcreate(0, "x", DOTL.RDWR))).toBe("EACCES");
    expect(errnoName(() => c.unlinkat(0, "a", AT_REMOVEDIR))).toBe("EACCES");
    expect(errnoName(() => c.lopen(0, DOTL.WRONLY))).toBe("EISDIR");
  });

  it("keeps the guest's fids when the same directory is shared again, and drops them when another replaces it", () => {
    c.walk(1, 30, "hello.txt");
    server.setExport({ name: "a", root: resolveExportRoot(share), readOnly: false });
    expect(c.getattr(30).size).toBe(20n);
    server.setExport({ name: "a", root: resolveExportRoot(other), readOnly: false });
    expect(errnoName(() => c.getattr(30))).toBe("ESTALE");
    expect(c.names(0).sort()).toEqual([".", "..", "a", "ro"]);
    c.walk(0, 31, "a", "ro.txt");
  });

  it("drops a removed export: its fids answer ESTALE, then are gone", () => {
    c.walk(1, 30, "hello.txt");
    expect(server.removeExport("a")).toBe(true);
    expect(errnoName(() => c.getattr(30))).toBe("EBADF");
    expect(c.names(0).sort()).toEqual([".", "..", "ro"]);
    expect(errnoName(() => c.walk(0, 31, "a"))).toBe("ENOENT");
  });
});

describe("P9Server: each message", () => {
  it("walks names one by one, returning the qids of the part that exists", () => {
    const qids = c.walk(1, 3, "sub", "deep.txt");
    expect(qids.map((q) => q.type)).toEqual([QT.DIR, QT.FILE]);
    // A walk whose first name fails is an error; a later one returns what it got, and makes no fid.
    expect(errnoName(() => c.walk(1, 4, "missing"))).toBe("ENOENT");
    expect(c.walk(1, 4, "sub", "missing")).toHaveLength(1);
    expect(errnoName(() => c.getattr(4))).toBe("EBADF");
    // Into a file is not a walk.
    expect(c.walk(1, 4, "hello.txt", "x")).toHaveLength(1);
    // Zero names clones; a newfid in use is refused.
    expect(c.walk(3, 5)).toEqual([]);
    expect(errnoName(() => c.walk(1, 5, "sub"))).toBe("EBADF");
  });

  it("refuses names with a slash, empty names and too many names", () => {
    expect(errnoName(() => c.walk(1, 6, "sub/deep.txt"))).toBe("EINVAL");
    expect(errnoName(() => c.walk(1, 6, ""))).toBe("EINVAL");
    expect(errnoName(() => c.walk(1, 6, ...Array(17).fill("sub")))).toBe("E2BIG");
  });

  it("reads and writes through lopen, and the host sees the bytes at once", () => {
    c.walk(1, 3, "hello.txt");
    c.lopen(3, DOTL.RDWR);
    expect(text(c.read(3, 6, 4))).toBe("from");
    expect(c.write(3, 0, "HELLO")).toBe(5);
    expect(readFileSync(join(share, "hello.txt"), "utf8")).toBe("HELLO from the host\n");
    writeFileSync(join(share, "hello.txt"), "changed on the host");
    expect(text(c.read(3, 0, 100))).toBe("changed on the host");
    expect(c.read(3, 1000, 10)).toHaveLength(0);
    expect(errnoName(() => c.lopen(3, 0))).toBe("EBADF"); // open twice
  });

  it("keeps reads to the negotiated msize", () => {
    writeFileSync(join(share, "big"), new Uint8Array(200_000).fill(7));
    c.version(65536);
    c.attach(0);
    c.walk(0, 3, "a", "big");
    c.lopen(3, 0);
    expect(c.read(3, 0, 1 << 20)).toHaveLength(65536 - 11);
  });

  it("refuses to read a fid opened write-only and to write one opened read-only", () => {
    c.walk(1, 3, "hello.txt");
    c.lopen(3, DOTL.WRONLY);
    expect(errnoName(() => c.read(3, 0, 10))).toBe("EBADF");
    c.walk(1, 4, "hello.txt");
    c.lopen(4, DOTL.RDONLY);
    expect(errnoName(() => c.write(4, 0, "x"))).toBe("EBADF");
    c.walk(1, 5, "sub");
    c.lopen(5, 0);
    expect(errnoName(() => c.read(5, 0, 10))).toBe("EISDIR");
  });

  it("creates files with lcreate (the fid becomes the open file) and truncates with O_TRUNC", () => {
    c.walk(1, 3);
    const qid = c.lcreate(3, "new.txt", DOTL.RDWR | DOTL.CREATE, 0o600);
    expect(qid.type).toBe(QT.FILE);
    c.write(3, 0, "made in the guest");
    expect(readFileSync(join(share, "new.txt"), "utf8")).toBe("made in the guest");
    expect(statSync(join(share, "new.txt")).mode & 0o777).toBe(0o600);
    c.walk(1, 4);
    expect(errnoName(() => c.lcreate(4, "new.txt", DOTL.RDWR | DOTL.CREATE | DOTL.EXCL))).toBe("EEXIST");
    c.walk(1, 5, "new.txt");
    c.lopen(5, DOTL.WRONLY | DOTL.TRUNC);
    expect(readFileSync(join(share, "new.txt"), "utf8")).toBe("");
  });

  it("reports getattr from the host's stat, and from the open file after an unlink", () => {
    c.walk(1, 3, "hello.txt");
    const a = c.getattr(3);
    const st = lstatSync(join(share, "hello.txt"));
    expect(a).toMatchObject({ mode: st.mode, uid: st.uid, gid: st.gid, size: BigInt(st.size), nlink: 1n });
    c.lopen(3, 0);
    rmSync(join(share, "hello.txt"));
    expect(c.getattr(3).size).toBe(20n);
    expect(text(c.read(3, 0, 5))).toBe("hello");
  });

  it("gives files on different host devices different qid paths", () => {
    const a = c.getattr(1).qid.path;
    expect(a >> 48n).toBeGreaterThan(0n);
    expect(c.getattr(0).qid.path).toBe(1n);
  });

  it("changes size, mode and times with setattr", () => {
    c.walk(1, 3, "hello.txt");
    c.setattr(3, { valid: 0x8, size: 5 });
    expect(readFileSync(join(share, "hello.txt"), "utf8")).toBe("hello");
    c.setattr(3, { valid: 0x1, mode: 0o600 });
    expect(statSync(join(share, "hello.txt")).mode & 0o777).toBe(0o600);
    c.setattr(3, { valid: 0x20 | 0x100, mtime: 1_000_000_000 });
    expect(statSync(join(share, "hello.txt")).mtimeMs).toBe(1_000_000_000_000);
  });

  it("makes directories, symlinks and hard links, and reads links back", () => {
    expect(c.mkdir(1, "d", 0o750).type).toBe(QT.DIR);
    expect(statSync(join(share, "d")).isDirectory()).toBe(true);
    expect(c.symlink(1, "ln", "hello.txt").type).toBe(QT.SYMLINK);
    c.walk(1, 3, "ln");
    expect(c.readlink(3)).toBe("hello.txt");
    c.walk(1, 4, "hello.txt");
    c.link(1, 4, "hard");
    expect(statSync(join(share, "hard")).ino).toBe(statSync(join(share, "hello.txt")).ino);
    c.walk(1, 5, "sub");
    expect(errnoName(() => c.link(1, 5, "dirlink"))).toBe("EPERM");
    expect(errnoName(() => c.mknod(1, "fifo"))).toBe("EOPNOTSUPP");
  });

  it("renames with rename and renameat, and fids below a renamed directory follow it", () => {
    c.walk(1, 3, "sub", "deep.txt");
    c.renameat(1, "sub", 1, "moved");
    expect(existsSync(join(share, "moved", "deep.txt"))).toBe(true);
    c.lopen(3, 0);
    expect(text(c.read(3, 0, 10))).toBe("deep");
    c.walk(1, 4, "hello.txt");
    c.walk(1, 5, "moved");
    c.rename(4, 5, "hi.txt");
    expect(readdirSync(join(share, "moved")).sort()).toEqual(["deep.txt", "hi.txt"]);
    expect(c.getattr(4).size).toBe(20n);
  });

  it("removes with unlinkat and remove (which clunks the fid even when it fails)", () => {
    c.unlinkat(1, "hello.txt");
    expect(existsSync(join(share, "hello.txt"))).toBe(false);
    expect(errnoName(() => c.unlinkat(1, "sub", AT_REMOVEDIR))).toBe("ENOTEMPTY");
    c.walk(1, 3, "sub", "deep.txt");
    c.remove(3);
    c.unlinkat(1, "sub", AT_REMOVEDIR);
    expect(readdirSync(share)).toEqual([]);
    c.walk(1, 4);
    expect(errnoName(() => c.remove(4))).toBe("EBUSY");
    expect(errnoName(() => c.getattr(4))).toBe("EBADF");
  });

  it("pages readdir by the offsets it hands out", () => {
    for (let i = 0; i < 300; i++) writeFileSync(join(share, `file-${i}`), "");
    c.walk(1, 3);
    c.lopen(3, 0);
    const seen: string[] = [];
    let offset = 0n;
    for (;;) {
      const part = c.readdir(3, Number(offset), 512);
      if (!part.length) break;
      seen.push(...part.map((e) => e.name));
      offset = part.at(-1)!.offset;
    }
    expect(seen).toHaveLength(302 + 2); // 300 files, hello.txt, sub, . and ..
    expect(new Set(seen).size).toBe(seen.length);
    expect(errnoName(() => c.readdir(1))).toBe("EBADF"); // not open
  });

  it("answers statfs, fsync, locks and an empty xattr list", () => {
    expect(c.statfs(1)).toMatchObject({ type: 0x01021997 });
    c.walk(1, 3, "hello.txt");
    c.lopen(3, DOTL.RDWR);
    expect(() => c.fsync(3)).not.toThrow();
    expect(c.lock(3)).toBe(0);
    expect(c.getlock(3)).toBe(2);
    expect(c.xattrwalk(3, 4, "")).toBe(0n);
    expect(c.read(4, 0, 100)).toHaveLength(0);
    expect(errnoName(() => c.xattrwalk(3, 5, "security.capability"))).toBe("ENODATA");
  });
});

describe("P9Server: read-only exports", () => {
  it("refuses every change with EROFS and still reads", () => {
    c.walk(2, 3, "ro.txt");
    expect(errnoName(() => c.lopen(3, DOTL.WRONLY))).toBe("EROFS");
    expect(errnoName(() => c.lopen(3, DOTL.RDONLY | DOTL.TRUNC))).toBe("EROFS");
    expect(errnoName(() => c.setattr(3, { valid: 0x8, size: 0 }))).toBe("EROFS");
    expect(errnoName(() => c.mkdir(2, "d"))).toBe("EROFS");
    expect(errnoName(() => c.symlink(2, "l", "/"))).toBe("EROFS");
    expect(errnoName(() => c.unlinkat(2, "ro.txt"))).toBe("EROFS");
    expect(errnoName(() => c.renameat(2, "ro.txt", 2, "x"))).toBe("EROFS");
    c.walk(2, 4);
    expect(errnoName(() => c.lcreate(4, "n", DOTL.RDWR | DOTL.CREATE))).toBe("EROFS");
    c.walk(2, 5, "ro.txt");
    expect(errnoName(() => c.remove(5))).toBe("EROFS");
    c.lopen(3, 0);
    expect(text(c.read(3, 0, 100))).toBe("read only");
    expect(readdirSync(other)).toEqual(["ro.txt"]);
  });
});

describe("P9Server: nothing outside an export is reachable", () => {
  it("never leaves the export by '..'", () => {
    expect(c.walk(1, 3, "sub", "..", "..").at(-1)!.path).toBe(1n); // the synthetic root, not the host's parent
    expect(c.walk(1, 4, "..", "outside")).toHaveLength(1); // stops at the synthetic root, which has no such name
    expect(errnoName(() => c.getattr(4))).toBe("EBADF");
    expect(c.walk(1, 4, "..", "..", "..", "ro")).toHaveLength(4);
  });

  it("serves symlinks as symlinks and never follows them: absolute, to '..' and chains", () => {
    symlinkSync("/etc", join(share, "abs"));
    symlinkSync("..", join(share, "up"));
    symlinkSync(join(outside, "secret"), join(share, "file-link"));
    symlinkSync("up", join(share, "chain"));
    for (const name of ["abs", "up", "chain"]) {
      expect(c.walk(1, 10, name)[0]!.type).toBe(QT.SYMLINK);
      c.clunk(10);
      expect(c.walk(1, 10, name, "passwd")).toHaveLength(1); // stops at the link: not a directory
      expect(errnoName(() => c.getattr(10))).toBe("EBADF");
    }
    c.walk(1, 11, "file-link");
    expect(errnoName(() => c.lopen(11, 0))).toBe("ELOOP");
    expect(c.getattr(11).size).toBe(BigInt(join(outside, "secret").length)); // the link's own size, not the file's
    c.walk(1, 12);
    expect(errnoName(() => c.lcreate(12, "file-link", DOTL.RDWR | DOTL.CREATE))).toBe("ELOOP");
    c.walk(1, 13, "file-link");
    expect(errnoName(() => c.setattr(13, { valid: 0x8, size: 0 }))).toBe("ELOOP");
    expect(readFileSync(join(outside, "secret"), "utf8")).toBe("outside the export");
  });

  it("lets the guest make a symlink out, which still leads nowhere through the server", () => {
    c.symlink(1, "escape", "../outside");
    expect(c.walk(1, 3, "escape", "secret")).toHaveLength(1);
    c.walk(1, 4);
    expect(errnoName(() => c.mkdir(4, "escape"))).toBe("EEXIST");
  });

  it("refuses a fid whose directory became a symlink out of the export (a swap between requests)", () => {
    c.walk(1, 3, "sub", "deep.txt");
    c.walk(1, 4, "sub");
    renameSync(join(share, "sub"), join(dir, "sub-away"));
    mkdirSync(join(outside, "deep.txt-dir"));
    symlinkSync(outside, join(share, "sub"));
    writeFileSync(join(outside, "deep.txt"), "outside");
    // The names lead through a symlink now: refused (the symlink is not opened as a directory).
    const refused = ["ENOENT", "ENOTDIR"];
    expect(refused).toContain(errnoName(() => c.getattr(3)));
    expect(refused).toContain(errnoName(() => c.lopen(3, 0)));
    expect(refused).toContain(errnoName(() => c.walk(4, 5, "secret")));
    expect(refused).toContain(errnoName(() => c.unlinkat(4, "secret")));
    expect(refused).toContain(errnoName(() => c.mkdir(4, "planted")));
    expect(readdirSync(outside).sort()).toEqual(["deep.txt", "deep.txt-dir", "secret"]);
  });

  it("follows a directory moved out of the export by nobody: its fids stop working", () => {
    c.walk(1, 3, "sub");
    renameSync(join(share, "sub"), join(outside, "sub"));
    expect(errnoName(() => c.walk(3, 4, "deep.txt"))).toBe("ENOENT");
    expect(errnoName(() => c.mkdir(3, "x"))).toBe("ENOENT");
    expect(existsSync(join(outside, "sub", "x"))).toBe(false);
  });

  it("refuses hard links and renames from one export to another (EXDEV)", () => {
    server.setExport({ name: "b", root: resolveExportRoot(outside), readOnly: false });
    c.walk(0, 3, "b");
    c.walk(1, 4, "hello.txt");
    expect(errnoName(() => c.link(3, 4, "stolen"))).toBe("EXDEV");
    expect(errnoName(() => c.renameat(1, "hello.txt", 3, "moved"))).toBe("EXDEV");
    expect(errnoName(() => c.rename(4, 3, "moved"))).toBe("EXDEV");
    expect(readdirSync(outside).sort()).toEqual(["secret"]);
  });

  it("treats a host hard link into the export as the file it is (the host's choice)", () => {
    linkSync(join(outside, "secret"), join(share, "hard"));
    c.walk(1, 3, "hard");
    c.lopen(3, 0);
    expect(text(c.read(3, 0, 100))).toBe("outside the export");
  });

  it("refuses exports that are not absolute directories", () => {
    expect(() => server.setExport({ name: "rel", root: "relative", readOnly: false })).toThrow();
    expect(() => server.setExport({ name: "../x", root: share, readOnly: false })).toThrow();
    expect(() => resolveExportRoot(join(share, "hello.txt"))).toThrow();
    expect(() => new P9Server().setExport({ name: "x", root: share, readOnly: false })).toThrow(/no host file system/);
  });
});

describe("P9Server: malformed requests", () => {
  it("answers a short, oversized or unknown message with Rlerror and the request's tag", () => {
    const raw = (bytes: number[]) => c.raw(Uint8Array.from(bytes));
    expect(raw([1, 2, 3]).type).toBe(P9.Rlerror);
    // size 100, but 7 bytes
    expect(raw([100, 0, 0, 0, P9.Tclunk, 9, 0])).toMatchObject({ type: P9.Rlerror, tag: 9 });
    // unknown type 200
    const unknown = raw([7, 0, 0, 0, 200, 4, 0]);
    expect(unknown).toMatchObject({ type: P9.Rlerror, tag: 4 });
    expect(unknown.r.u32()).toBe(ERRNO.EOPNOTSUPP);
    // a clunk without its fid
    const short = raw([7, 0, 0, 0, P9.Tclunk, 5, 0]);
    expect(short.r.u32()).toBe(ERRNO.EPROTO);
    // 9P2000's Topen and Tstat are not 9P2000.L
    expect(raw([11, 0, 0, 0, 112, 6, 0, 1, 0, 0, 0]).r.u32()).toBe(ERRNO.EOPNOTSUPP);
  });

  it("refuses a write whose count is more than the data it carries", () => {
    c.walk(1, 3, "hello.txt");
    c.lopen(3, DOTL.RDWR);
    const w = new P9Writer(P9.Twrite, 7).u32(3).u64(0).u32(1000).bytes(new Uint8Array(10));
    expect(c.raw(w.finish()).r.u32()).toBe(ERRNO.EPROTO);
    expect(readFileSync(join(share, "hello.txt"), "utf8")).toBe("hello from the host\n");
  });

  it("survives random and mutated requests: one well-formed reply each, nothing outside touched", () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24);
    const valid = [
      new P9Writer(P9.Twalk, 1).u32(1).u32(50).u16(2).str("sub").str("deep.txt").finish(),
      new P9Writer(P9.Tlcreate, 1).u32(1).str("x").u32(2).u32(0o644).u32(0).finish(),
      new P9Writer(P9.Trenameat, 1).u32(1).str("hello.txt").u32(2).str("y").finish(),
      new P9Writer(P9.Tmkdir, 1).u32(1).str("..").u32(0o755).u32(0).finish(),
      new P9Writer(P9.Tsymlink, 1).u32(1).str("s").str("/etc/passwd").u32(0).finish(),
      new P9Writer(P9.Treaddir, 1).u32(0).u64(0).u32(8192).finish(),
    ];
    for (let i = 0; i < 5000; i++) {
      let bytes: Uint8Array;
      if (i % 2) {
        bytes = valid[i % valid.length]!.slice();
        for (let k = 0; k < 1 + (i % 4); k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      } else {
        bytes = Uint8Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256));
        if (bytes.length >= 5 && rand() < 0.7) {
          new DataView(bytes.buffer).setUint32(0, bytes.length, true);
          bytes[4] = [8, 12, 14, 16, 18, 20, 22, 24, 26, 30, 32, 40, 50, 52, 54, 70, 72, 74, 76, 100, 104, 108, 110, 116, 118, 120, 122][Math.floor(rand() * 27)]!;
        }
      }
      const reply = server.handle(bytes);
      const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
      expect(view.getUint32(0, true)).toBe(reply.length);
      if (bytes.length >= 7) expect(view.getUint16(5, true)).toBe(bytes[5]! | (bytes[6]! << 8));
    }
    expect(readdirSync(outside)).toEqual(["secret"]);
    expect(readFileSync(join(outside, "secret"), "utf8")).toBe("outside the export");
    expect(readdirSync(dir).sort()).toEqual(["other", "outside", "share"]);
  });
});
