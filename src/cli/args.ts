// How every verb reads its arguments: Node's parseArgs in strict mode, a
// bound on the positional arguments, and one shape of complaint (what was
// wrong, then the verb's usage) that main.ts turns into exit status 125.
import { type ParseArgsConfig, parseArgs } from "node:util";
import { HyperlabError } from "../errors.ts";
import { write } from "./verb.ts";

/** Options of a verb, as parseArgs takes them (`help`/`-h` is added). */
export type VerbOptions = NonNullable<ParseArgsConfig["options"]>;

/** What a verb accepts besides its options. */
export interface VerbSpec<O extends VerbOptions> {
  options: O;
  /** how many positional arguments (default: any number, none required) */
  positionals?: { min?: number; max?: number };
  /** the verb has no -h short for help (e.g. `run`, where -h is --hostname) */
  noShortHelp?: boolean;
  /** a hint for positionals beyond `max`: what the user probably meant */
  extraHint?: (positionals: string[]) => string;
}

type Parsed<O extends VerbOptions> = ReturnType<typeof parseArgs<{ options: O & { help: { type: "boolean" } }; allowPositionals: true; strict: true }>>;

/** The complaint about a verb's arguments: what was wrong, then how the verb is used. */
export function usageError(verb: string, usage: string, problem: string): HyperlabError {
  return new HyperlabError("INVALID_ARGUMENT", `${problem}\nUsage: ${usage}\nSee 'hyperlab ${verb} --help'.`);
}

/**
 * Parses a verb's arguments strictly: an unknown flag, a flag without its
 * value, too few or too many positional arguments are INVALID_ARGUMENT naming
 * the argument and showing `usage`. Returns "help" when --help (or -h) was given.
 */
export function parseVerb<O extends VerbOptions>(verb: string, usage: string, args: string[], spec: VerbSpec<O>): Parsed<O> | "help" {
  const help = spec.noShortHelp ? { type: "boolean" as const } : { type: "boolean" as const, short: "h" };
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args, options: { ...spec.options, help }, allowPositionals: true, strict: true }) as Parsed<O>;
  } catch (err) {
    if (args.includes("--help") || (!spec.noShortHelp && args.includes("-h"))) return "help";
    throw usageError(verb, usage, flagProblem(err as Error & { code?: string }));
  }
  if ((parsed.values as { help?: boolean }).help) return "help";
  const { min = 0, max = Infinity } = spec.positionals ?? {};
  const given = parsed.positionals;
  if (given.length < min) {
    throw usageError(verb, usage, `'hyperlab ${verb}' needs ${min === 1 ? "an argument" : `at least ${min} arguments`}${given.length ? ` (got ${given.length})` : ""}.`);
  }
  if (given.length > max) {
    const extra = given.slice(max).map((a) => `'${a}'`).join(", ");
    const hint = spec.extraHint ? ` ${spec.extraHint(given)}` : "";
    throw usageError(verb, usage, `unexpected argument${given.length - max > 1 ? "s" : ""} ${extra}: 'hyperlab ${verb}' takes ${max === 0 ? "none" : `at most ${max}`}.${hint}`);
  }
  return parsed;
}

/** parseArgs's complaint in Docker's words ("unknown flag: --x"). */
function flagProblem(err: Error & { code?: string }): string {
  const unknown = /Unknown option '([^']+)'/.exec(err.message);
  if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown) return `unknown flag: ${unknown[1]}`;
  const needsValue = /Option '(?:-\w, )?(-[^ ']+)[^']*' argument missing/.exec(err.message);
  if (err.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && needsValue) return `flag ${needsValue[1]} needs a value`;
  return err.message;
}

/** A flag's value as a positive number (undefined when absent). */
export function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new HyperlabError("INVALID_ARGUMENT", `${flag} needs a positive number, not '${value}'`);
  return n;
}

/** A flag's value as a whole number ≥ 0 (undefined when absent). */
export function wholeNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new HyperlabError("INVALID_ARGUMENT", `${flag} needs a whole number, not '${value}'`);
  return n;
}

/** One subcommand of a verb (`hyperlab network create`): its usage line, what it accepts, and what it does with what was parsed. */
export interface Subcommand<V = Record<string, unknown>> {
  usage: string;
  spec: VerbSpec<VerbOptions>;
  run(values: V, positionals: string[]): Promise<number>;
}

/** A subcommand of `verb`, its usage line prefixed with `hyperlab VERB`. */
export function subcommand<O extends VerbOptions, V = Record<string, unknown>>(verb: string, usage: string, spec: VerbSpec<O>, run: Subcommand<V>["run"]): Subcommand<V> {
  return { usage: `hyperlab ${verb} ${usage}`, spec, run } as Subcommand<V>;
}

/**
 * The subcommand of `verb` that `name` (the verb's first argument) names:
 * "help" when there is none or it is --help/-h, INVALID_ARGUMENT naming an
 * unknown one.
 */
export function pickSubcommand<T>(verb: string, subcommands: Readonly<Record<string, T>>, name: string | undefined): T | "help" {
  if (!name || name === "--help" || name === "-h") return "help";
  const command = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (!command) throw new HyperlabError("INVALID_ARGUMENT", `'${name}' is not a 'hyperlab ${verb}' command.\nSee 'hyperlab ${verb} --help'.`);
  return command;
}

/** Runs the subcommand of `verb` that `args` name with the rest of them parsed strictly; prints `help` when asked for. */
export async function runSubcommand<V>(verb: string, help: string, subcommands: Readonly<Record<string, Subcommand<V>>>, args: string[]): Promise<number> {
  const [name, ...rest] = args;
  const command = pickSubcommand(verb, subcommands, name);
  const parsed = command === "help" ? "help" : parseVerb(`${verb} ${name}`, command.usage, rest, command.spec);
  if (command === "help" || parsed === "help") return write(help), 0;
  return command.run(parsed.values as V, parsed.positionals);
}
