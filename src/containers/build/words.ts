// Docker's word processing for Dockerfile arguments: quotes, the escape
// character and `$VAR` / `${VAR}` / `${VAR:-default}` / `${VAR:+alt}`
// expansion, as dockerd's shell lexer does it for ENV, ARG, LABEL, COPY,
// ADD, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL and FROM. RUN, CMD and
// ENTRYPOINT are not expanded here: their shell does it. The Dockerfile's
// structure comes from dockerfile-ast (dockerfile.ts); this is only what a
// word means once the build knows its variables. Pure: no I/O.
import { HyperlabError } from "../../errors.ts";

/** Variables in scope for expansion: name → value (undefined: not set). */
export type Vars = (name: string) => string | undefined;

/** A variable lookup over `KEY=VALUE` lists, later entries winning. */
export function varsOf(...lists: ReadonlyArray<readonly string[]>): Vars {
  const map = new Map<string, string>();
  for (const e of lists.flat()) {
    const eq = e.indexOf("=");
    if (eq > 0) map.set(e.slice(0, eq), e.slice(eq + 1));
  }
  return (name) => map.get(name);
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}
  peek(): string | undefined {
    return this.text[this.pos];
  }
  next(): string | undefined {
    return this.text[this.pos++];
  }
  get done(): boolean {
    return this.pos >= this.text.length;
  }
}

/**
 * One word as Docker reads it: quotes removed, escapes applied, variables
 * expanded with `vars`. `escape` is the Dockerfile's escape character (`\`
 * or a backtick). INVALID_ARGUMENT for an unterminated quote or `${`.
 */
export function processWord(word: string, vars: Vars, escape = "\\"): string {
  return words(word, vars, escape, false).join("");
}

/**
 * Several words (split at unquoted whitespace), each processed as
 * processWord does: what EXPOSE and VOLUME's shell form take.
 */
export function processWords(text: string, vars: Vars, escape = "\\"): string[] {
  return words(text, vars, escape, true);
}

function words(text: string, vars: Vars, escape: string, split: boolean): string[] {
  const s = new Scanner(text);
  const out: string[] = [];
  let word = "";
  let inWord = false;
  while (!s.done) {
    const ch = s.peek()!;
    if (split && /\s/.test(ch)) {
      s.next();
      if (inWord) out.push(word);
      word = "";
      inWord = false;
      continue;
    }
    inWord = true;
    if (ch === escape) {
      s.next();
      // An escape at the very end of a word is dropped, as dockerd does.
      if (!s.done) word += s.next();
      continue;
    }
    if (ch === "'") {
      s.next();
      word += singleQuoted(s);
      continue;
    }
    if (ch === '"') {
      s.next();
      word += doubleQuoted(s, vars, escape);
      continue;
    }
    if (ch === "$") {
      word += dollar(s, vars, escape);
      continue;
    }
    word += s.next();
  }
  if (inWord || !split) out.push(word);
  return out;
}

function singleQuoted(s: Scanner): string {
  let out = "";
  for (;;) {
    const ch = s.next();
    if (ch === undefined) throw new HyperlabError("INVALID_ARGUMENT", "unexpected end of statement while looking for matching single-quote");
    if (ch === "'") return out;
    out += ch;
  }
}

function doubleQuoted(s: Scanner, vars: Vars, escape: string): string {
  let out = "";
  for (;;) {
    const ch = s.peek();
    if (ch === undefined) throw new HyperlabError("INVALID_ARGUMENT", "unexpected end of statement while looking for matching double-quote");
    if (ch === '"') {
      s.next();
      return out;
    }
    if (ch === "$") {
      out += dollar(s, vars, escape);
      continue;
    }
    s.next();
    if (ch === escape) {
      const n = s.peek();
      if (n === undefined) continue;
      // Only these can be escaped inside double quotes; other escapes stay as written.
      if (n === '"' || n === "$" || n === escape) {
        out += s.next();
        continue;
      }
    }
    out += ch;
  }
}

/** `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME:+word}`, `${NAME-word}`, `${NAME+word}`; a lone `$` stays. */
function dollar(s: Scanner, vars: Vars, escape: string): string {
  s.next(); // the $
  const ch = s.peek();
  if (ch === "{") {
    s.next();
    const name = readName(s);
    if (!name) throw new HyperlabError("INVALID_ARGUMENT", `missing variable name in \${…}: ${s.text}`);
    const c = s.next();
    if (c === "}") return vars(name) ?? "";
    let colon = false;
    let op = c;
    if (c === ":") {
      colon = true;
      op = s.next();
    }
    if (op !== "-" && op !== "+") {
      throw new HyperlabError("INVALID_ARGUMENT", `unsupported modifier (${colon ? ":" : ""}${op ?? ""}) in substitution: ${s.text} (use \${VAR}, \${VAR:-default} or \${VAR:+alternative})`);
    }
    const word = braced(s, vars, escape);
    const value = vars(name);
    const set = colon ? value !== undefined && value !== "" : value !== undefined;
    if (op === "-") return set ? value! : word;
    return set ? word : "";
  }
  if (ch !== undefined && NAME_START.test(ch)) return vars(readName(s)) ?? "";
  // $ followed by something that cannot start a name: a literal $.
  return "$";
}

function readName(s: Scanner): string {
  let name = "";
  while (!s.done && NAME_CHAR.test(s.peek()!)) name += s.next();
  return name;
}

/** The word of a `${NAME:-word}` up to its closing brace, itself processed. */
function braced(s: Scanner, vars: Vars, escape: string): string {
  let out = "";
  for (;;) {
    const ch = s.peek();
    if (ch === undefined) throw new HyperlabError("INVALID_ARGUMENT", `missing '}' in substitution: ${s.text}`);
    if (ch === "}") {
      s.next();
      return out;
    }
    if (ch === "$") out += dollar(s, vars, escape);
    else if (ch === "'") {
      s.next();
      out += singleQuoted(s);
    } else if (ch === '"') {
      s.next();
      out += doubleQuoted(s, vars, escape);
    } else if (ch === escape) {
      s.next();
      if (!s.done) out += s.next();
    } else out += s.next();
  }
}
