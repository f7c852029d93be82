#!/usr/bin/env node
// Entry point of the `hyperlab` command. In a checkout (src/ is here) it runs
// the TypeScript sources through tsx, so a change to src/ needs no build; the
// npm package has no src/ and runs the JavaScript compiled into lib/ by
// `npm run build:lib`, with no TypeScript compiler at run time.
// `--version` answers before anything else loads: a script asking for it
// pays for one file read, not for the whole command.
import { existsSync, readFileSync } from "node:fs";

const args = process.argv.slice(2);
if (args.length === 1 && args[0] === "--version") {
  const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  process.stdout.write(`hyperlab ${version}\n`);
} else {
  const source = new URL("../src/cli/main.ts", import.meta.url);
  if (existsSync(source)) {
    const { register } = await import("tsx/esm/api");
    register();
    await import(source.href);
  } else {
    await import("../lib/cli/main.js");
  }
}
