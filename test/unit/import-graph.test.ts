// The shape of src/ (docs/architecture.md): each room imports only rooms
// below it, and no module reaches itself through its imports. Read from the
// sources as they are, so a new upward import or circle fails here.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");

/**
 * Rooms from the bottom up: a room may import its own and lower ranks (cli,
 * web and testing share a rank and may not import each other). `index` is
 * the package's export list (src/index.ts): above every room, imported by none.
 */
const RANK: Record<string, number> = { shared: 0, hardware: 1, guest: 2, hypervisor: 3, containers: 4, daemon: 5, labs: 6, cli: 7, web: 7, testing: 7, index: 8 };

/** The room of a file under src/ (files at src/'s top are shared by all, but for the export list index.ts). */
function roomOf(file: string): string {
  const parts = file.split("/");
  if (file === "index.ts") return "index";
  return parts.length === 1 ? "shared" : parts[0]!;
}

/** The import specifiers of a module: static, type-only, re-exports, side-effect and dynamic imports. */
export function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const found: string[] = [];
  for (const re of [/\b(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']/g, /\bimport\s*["']([^"']+)["']/g, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g]) {
    for (const m of code.matchAll(re)) found.push(m[1]!);
  }
  return found;
}

/** One import that breaks the rules. */
interface Violation {
  from: string;
  to: string;
  why: string;
}

/** Imports that go up the layers or sideways between cli and web, given module → imported modules (paths relative to src/). */
export function upwardImports(graph: Map<string, string[]>): Violation[] {
  const out: Violation[] = [];
  for (const [from, targets] of graph) {
    const a = roomOf(from);
    for (const to of targets) {
      const b = roomOf(to);
      if (a === b) continue;
      if (!(a in RANK) || !(b in RANK)) out.push({ from, to, why: `room ${!(a in RANK) ? a : b} is not in the layer table` });
      else if (RANK[b]! > RANK[a]!) out.push({ from, to, why: `${a}/ is below ${b}/` });
      else if (RANK[b] === RANK[a]) out.push({ from, to, why: `${a}/ and ${b}/ are side by side and may not import each other` });
    }
  }
  return out;
}

/** Every import circle (strongly connected component of more than one module, or a module importing itself). */
export function circles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    indexOf.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v);
  return found;
}

/** src/'s module graph: each .ts/.mjs file → the files under src/ it imports. */
function srcGraph(): Map<string, string[]> {
  const files = (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => /\.(ts|mjs)$/.test(f) && !f.endsWith(".d.ts")).map((f) => f.split("\\").join("/"));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets = importsOf(readFileSync(join(SRC, file), "utf8"))
      .filter((s) => s.startsWith("."))
      .map((s) => relative(SRC, resolve(SRC, dirname(file), s.replace(/\?.*$/, ""))).split("\\").join("/"))
      .filter((t) => !t.startsWith(".."));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Modules outside src/hardware that import the v86 package's code (its WebAssembly file as an asset URL is allowed). */
function v86Importers(): string[] {
  const files = (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => /\.(ts|mjs)$/.test(f));
  return files.filter((f) => !f.startsWith("hardware") && importsOf(readFileSync(join(SRC, f), "utf8")).some((s) => (s === "v86" || s.startsWith("v86/")) && !s.endsWith("?url")));
}

describe("the import checker", () => {
  it("finds static, type-only, re-exported and dynamic imports, and skips commented ones", () => {
    const source = [
      'import { a } from "./a.ts";',
      'import type {\n  B,\n} from "../hardware/b.ts";',
      'export { c } from "./c.ts";',
      'import "./side.ts";',
      'const d = await import("./d.ts");',
      '// import { x } from "./commented.ts";',
      '/* import { y } from "./block.ts"; */',
    ].join("\n");
    expect(importsOf(source).sort()).toEqual(["../hardware/b.ts", "./a.ts", "./c.ts", "./d.ts", "./side.ts"]);
  });

  it("reports an upward import, one between cli and web, and one of the export list", () => {
    const graph = new Map([
      ["hardware/machine.ts", ["hypervisor/vm.ts", "errors.ts"]],
      ["hypervisor/vm.ts", ["hardware/machine.ts"]],
      ["cli/main.ts", ["web/page.ts"]],
      ["web/page.ts", []],
      ["testing/lab.ts", ["index.ts", "hypervisor/vm.ts"]],
      ["index.ts", ["hypervisor/vm.ts", "errors.ts"]],
      ["errors.ts", []],
    ]);
    expect(upwardImports(graph)).toEqual([
      { from: "hardware/machine.ts", to: "hypervisor/vm.ts", why: "hardware/ is below hypervisor/" },
      { from: "cli/main.ts", to: "web/page.ts", why: "cli/ and web/ are side by side and may not import each other" },
      { from: "testing/lab.ts", to: "index.ts", why: "testing/ is below index/" },
    ]);
  });

  it("reports a circle of two modules, a longer one and a module importing itself", () => {
    const graph = new Map([
      ["hypervisor/snapshot.ts", ["hypervisor/delta.ts"]],
      ["hypervisor/delta.ts", ["hypervisor/snapshot.ts"]],
      ["guest/a.ts", ["guest/b.ts"]],
      ["guest/b.ts", ["guest/c.ts"]],
      ["guest/c.ts", ["guest/a.ts"]],
      ["guest/self.ts", ["guest/self.ts"]],
      ["guest/leaf.ts", []],
    ]);
    expect(circles(graph).sort()).toEqual([["guest/a.ts", "guest/b.ts", "guest/c.ts"], ["guest/self.ts"], ["hypervisor/delta.ts", "hypervisor/snapshot.ts"]]);
  });
});

describe("src/", () => {
  const graph = srcGraph();

  it("is read whole: every room is in the layer table", () => {
    expect(graph.size).toBeGreaterThan(50);
    expect([...new Set([...graph.keys()].map(roomOf))].filter((r) => !(r in RANK))).toEqual([]);
  });

  it("imports only downward: hardware → guest → hypervisor → containers → daemon → cli, web, testing → index", () => {
    expect(upwardImports(graph)).toEqual([]);
  });

  it("has no import circles", () => {
    expect(circles(graph)).toEqual([]);
  });

  it("imports v86 only in src/hardware", () => {
    expect(v86Importers()).toEqual([]);
  });
});
