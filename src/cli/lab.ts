// `hyperlab lab ...`: course labs headless (docs/labs.md). `lab run` checks
// labs against fresh VMs, their own solutions, or learners' saved states, in
// VMs of this process (no daemon), and prints TAP, JUnit or JSON; `lab
// check` only reads the files and says what is wrong with them.
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HyperlabError } from "../errors.ts";
import type { Lab } from "../labs/lab.ts";
import { type SavedState, parseShard, runLabs } from "../labs/lab-runner.ts";
import { parseLab } from "../labs/parse-lab.ts";
import { REPORTERS, type ReporterName, report } from "../labs/reporters.ts";
import { parseVerb, pickSubcommand, wholeNumber } from "./args.ts";
import { type Verb, write } from "./verb.ts";

const RUN_USAGE = "hyperlab lab run [OPTIONS] FILE...";
const CHECK_USAGE = "hyperlab lab check FILE...";
const HELP = `Usage: hyperlab lab COMMAND

Course labs: Markdown files with steps, hints, checks and solutions
(docs/labs.md).

Commands:
  run [OPTIONS] FILE...   run the labs' checks, each lab in its own VM of this
                          process; exit status 0 only if every check passed
  check FILE...           read the lab files and report what is wrong in them

Options of run:
      --solve             run each step's solution before its checks (the
                          lab's self-test)
      --snapshot PATH     grade a learner's saved state instead of a fresh VM
                          (repeatable; a folder means every *.snap in it); a
                          state saved in another lab or image is refused with
                          SNAPSHOT_MISMATCH
      --reporter NAME     tap (default), junit or json
  -o, --output FILE       write the report to FILE instead of standard output
  -j, --jobs N            run N labs or states at once, each in its own VM
                          (default 1; fewer if the memory budget holds fewer)
      --shard I/N         run only shard I of N (1-based): the labs or states
                          sorted by name, every N-th from the I-th
      --save-state DIR    after the checks, save each lab's VM (whole) as
                          DIR/<lab id>.snap, as a learner's "Download my work"
                          does (not with --snapshot)
`;

const decoder = new TextDecoder();

/** Reads and parses the lab files; every problem of every file in one LAB_INVALID. */
async function readLabs(files: string[]): Promise<Lab[]> {
  const labs: Lab[] = [];
  const problems: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = decoder.decode(await readFile(file));
    } catch (err) {
      problems.push(`${file}: cannot read the lab file: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
      continue;
    }
    try {
      labs.push(parseLab(text, file));
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length) throw new HyperlabError("LAB_INVALID", problems.join("\n"));
  const ids = new Map<string, string>();
  for (const lab of labs) {
    const other = ids.get(lab.id);
    if (other) throw new HyperlabError("LAB_INVALID", `${lab.file}:2: lab id '${lab.id}' is also the id of ${other}: ids name labs in learner snapshots and must differ`);
    ids.set(lab.id, lab.file);
  }
  return labs;
}

/** The saved states named by --snapshot: files, or every *.snap of a folder. */
async function savedStates(paths: string[]): Promise<SavedState[]> {
  const out: SavedState[] = [];
  for (const path of paths) {
    const st = await stat(path).catch(() => {
      throw new HyperlabError("INVALID_ARGUMENT", `--snapshot ${path}: no such file or folder`);
    });
    const files = st.isDirectory() ? (await readdir(path)).filter((f) => f.endsWith(".snap")).sort().map((f) => join(path, f)) : [path];
    if (st.isDirectory() && files.length === 0) throw new HyperlabError("INVALID_ARGUMENT", `--snapshot ${path}: the folder has no *.snap file`);
    for (const file of files) out.push({ name: file, read: async () => new Uint8Array(await readFile(file)) });
  }
  return out;
}

async function runCommand(args: string[]): Promise<number> {
  const parsed = parseVerb("lab run", RUN_USAGE, args, {
    options: {
      solve: { type: "boolean" },
      snapshot: { type: "string", multiple: true },
      reporter: { type: "string" },
      output: { type: "string", short: "o" },
      jobs: { type: "string", short: "j" },
      shard: { type: "string" },
      "save-state": { type: "string" },
    },
    positionals: { min: 1 },
  });
  if (parsed === "help") return write(HELP), 0;
  const v = parsed.values;
  const reporter = (v.reporter ?? "tap") as ReporterName;
  if (!REPORTERS.includes(reporter)) throw new HyperlabError("INVALID_ARGUMENT", `--reporter must be tap, junit or json, not '${v.reporter}'`);
  const jobs = wholeNumber("--jobs", v.jobs);
  if (jobs === 0) throw new HyperlabError("INVALID_ARGUMENT", "--jobs needs at least 1");
  const shard = v.shard === undefined ? undefined : parseShard(v.shard);
  if (v.solve && v.snapshot?.length) throw new HyperlabError("INVALID_ARGUMENT", "--solve runs the lab's solutions on a fresh VM; it cannot be used with --snapshot (a learner's state is graded as it is)");
  const saveDir = v["save-state"];
  if (saveDir !== undefined && v.snapshot?.length) throw new HyperlabError("INVALID_ARGUMENT", "--save-state saves the VMs of fresh or --solve runs; a learner's state (--snapshot) is saved already");
  const labs = await readLabs(parsed.positionals);
  if (saveDir !== undefined) await mkdir(saveDir, { recursive: true });
  const states = v.snapshot?.length ? await savedStates(v.snapshot) : undefined;
  const results = await runLabs(labs, {
    solve: v.solve,
    states,
    jobs,
    shard,
    saveState: saveDir === undefined ? undefined : (unit, state) => writeFile(join(saveDir, `${unit.lab.id}.snap`), state),
    // What could not run is said on stderr as it happens; the report says it too.
    onResult: (r) => {
      if (r.error) process.stderr.write(`hyperlab: ${r.unit.name}: ${r.error.message} [${r.error.code}]\n`);
    },
  });
  const text = await report(reporter, results);
  if (v.output) await writeFile(v.output, text);
  else write(text);
  const checks = results.flatMap((r) => r.steps.flatMap((s) => s.checks));
  const failed = checks.filter((c) => !c.passed).length;
  const broken = results.filter((r) => r.error).length;
  process.stderr.write(
    `${results.length} ${results.length === 1 ? "run" : "runs"}${shard ? ` (shard ${shard.index}/${shard.total})` : ""}: ${checks.length - failed} of ${checks.length} checks passed${broken ? `, ${broken} could not run` : ""}\n`,
  );
  return results.every((r) => r.passed) ? 0 : 1;
}

async function checkCommand(args: string[]): Promise<number> {
  const parsed = parseVerb("lab check", CHECK_USAGE, args, { options: {}, positionals: { min: 1 } });
  if (parsed === "help") return write(HELP), 0;
  const labs = await readLabs(parsed.positionals);
  for (const lab of labs) {
    const checks = lab.steps.reduce((n, s) => n + s.checks.length, 0);
    write(`${lab.file}: ${lab.id}: ${lab.steps.length} steps, ${checks} checks\n`);
  }
  return 0;
}

const subcommands: Record<string, (args: string[]) => Promise<number>> = { run: runCommand, check: checkCommand };

export const labVerb: Verb = {
  name: "lab",
  summary: "course labs: run their checks (fresh, --solve, or learners' states), check lab files",
  run: async (args) => {
    const [name, ...rest] = args;
    const command = pickSubcommand("lab", subcommands, name);
    return command === "help" ? (write(HELP), 0) : command(rest);
  },
};
