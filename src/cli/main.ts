// The `hyperlab` command: finds the verb and hands over to its file.
import { isHyperlabError } from "../errors.ts";
import { bootVerb } from "./boot.ts";
import { buildVerb } from "./build.ts";
import { daemonVerb } from "./daemon.ts";
import { execVerb } from "./exec.ts";
import { imagesVerb } from "./images.ts";
import { inspectVerb } from "./inspect.ts";
import { killVerb } from "./kill.ts";
import { loginVerb } from "./login.ts";
import { logoutVerb } from "./logout.ts";
import { labVerb } from "./lab.ts";
import { logsVerb } from "./logs.ts";
import { networkVerb } from "./network.ts";
import { portVerb } from "./port.ts";
import { psVerb } from "./ps.ts";
import { pullVerb } from "./pull.ts";
import { pushVerb } from "./push.ts";
import { rmVerb } from "./rm.ts";
import { runVerb } from "./run.ts";
import { statsVerb } from "./stats.ts";
import { stopVerb } from "./stop.ts";
import type { Verb } from "./verb.ts";
import { vmVerb } from "./vm.ts";
import { volumeVerb } from "./volume.ts";

/** Exit status for errors of hyperlab itself (as Docker uses 125 for its own). */
export const EXIT_HYPERLAB_ERROR = 125;

const verbs: Verb[] = [bootVerb, runVerb, buildVerb, imagesVerb, pullVerb, pushVerb, loginVerb, logoutVerb, psVerb, execVerb, logsVerb, stopVerb, killVerb, rmVerb, inspectVerb, portVerb, statsVerb, networkVerb, volumeVerb, vmVerb, daemonVerb, labVerb];

function usage(): string {
  const lines = verbs.map((v) => `  ${v.name.padEnd(8)} ${v.summary}`);
  return `Usage: hyperlab COMMAND [OPTIONS]\n\nCommands:\n${lines.join("\n")}\n\nRun 'hyperlab COMMAND --help' for a command's options, 'hyperlab --version' for the version.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage());
    return 0;
  }
  const verb = verbs.find((v) => v.name === name);
  if (!verb) {
    process.stderr.write(`hyperlab: '${name}' is not a hyperlab command.\n\n${usage()}`);
    return EXIT_HYPERLAB_ERROR;
  }
  return verb.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // The code goes on the first line; a usage that follows keeps its own lines.
    const message = err instanceof Error ? err.message : String(err);
    const [first, ...more] = message.split("\n");
    const text = isHyperlabError(err) ? [`${first} [${err.code}]`, ...more].join("\n") : message;
    process.stderr.write(`hyperlab: error: ${text}\n`);
    // A container command that could not run leaves with 126 or 127, as docker run does.
    const exitCode = isHyperlabError(err, "CONTAINER_START_FAILED") ? err.detail?.exitCode : undefined;
    process.exit(typeof exitCode === "number" ? exitCode : EXIT_HYPERLAB_ERROR);
  },
);
