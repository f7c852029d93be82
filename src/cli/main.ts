// The `hyperlab` command: parses the verb and hands over to its file.
import { isHyperlabError } from "../errors.ts";
import { bootCommand } from "./boot.ts";
import { containerVerbs } from "./containers.ts";
import { daemonCommand } from "./daemon.ts";
import { imagesCommand } from "./images.ts";
import { runCommand } from "./run.ts";
import { statsCommand, vmCommand } from "./vm.ts";

/** Exit status for errors of hyperlab itself (as Docker uses 125 for its own). */
export const EXIT_HYPERLAB_ERROR = 125;

const verbs: Record<string, { run: (args: string[]) => Promise<number>; help: string }> = {
  boot: { run: bootCommand, help: "boot the default guest and attach this terminal to its console" },
  run: { run: runCommand, help: "run a command in a new container" },
  images: { run: imagesCommand, help: "list the container images" },
  ...containerVerbs,
  stats: { run: statsCommand, help: "the VMs' memory budget, allocation and use (with containers: their usage)" },
  vm: { run: vmCommand, help: "manage VMs: create, ls, exec, pause, resume, snapshot, restore, fork, update, rm" },
  daemon: { run: daemonCommand, help: "keep a guest and a hypervisor running and serve their API on a Unix socket" },
};

function usage(): string {
  const lines = Object.entries(verbs).map(([name, v]) => `  ${name.padEnd(8)} ${v.help}`);
  return `Usage: hyperlab COMMAND [OPTIONS]\n\nCommands:\n${lines.join("\n")}\n\nRun 'hyperlab COMMAND --help' for a command's options.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (!verb || verb === "--help" || verb === "-h" || verb === "help") {
    process.stdout.write(usage());
    return 0;
  }
  const command = verbs[verb];
  if (!command) {
    process.stderr.write(`hyperlab: '${verb}' is not a hyperlab command.\n\n${usage()}`);
    return EXIT_HYPERLAB_ERROR;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const text = isHyperlabError(err) ? `${err.message} [${err.code}]` : err instanceof Error ? err.message : String(err);
    process.stderr.write(`hyperlab: error: ${text}\n`);
    process.exit(EXIT_HYPERLAB_ERROR);
  },
);
