// `hyperlab login`: checks a user and password against a registry and keeps
// them as docker does, in $DOCKER_CONFIG/config.json (default
// ~/.docker/config.json) under "auths", so `hyperlab push|pull` and the
// docker CLI both use them. Needs no daemon: the check is the registry's.
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { saveCredentials } from "../containers/node-credentials.ts";
import { loginToRegistry, registryDomain } from "../containers/registry-transfer.ts";
import { HyperlabError } from "../errors.ts";
import { parseVerb } from "./args.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab login [OPTIONS] SERVER";
const HELP = `Usage: ${USAGE}

Logs in to the registry SERVER (localhost:5000): checks the credentials
against it (Basic or a Bearer token, as it asks) and keeps them in
$DOCKER_CONFIG/config.json (default ~/.docker/config.json), as docker login
does. Without -u or a password, asks for them on a terminal.

Options:
  -u, --username USER    the user name
  -p, --password PASS    the password (prefer --password-stdin)
      --password-stdin   read the password from standard input
`;

/** Reads all of standard input (the password of --password-stdin), without its last line break. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/** Asks a question on the terminal (not echoing the answer when `secret`). */
async function ask(question: string, secret: boolean): Promise<string> {
  if (!process.stdin.isTTY) throw new HyperlabError("INVALID_ARGUMENT", `cannot ask for the ${secret ? "password" : "user name"}: standard input is not a terminal. Give -u USER and --password-stdin.`);
  let muted = false;
  const output = new Writable({ write: (chunk, _enc, cb) => (muted ? undefined : process.stdout.write(chunk), cb()) });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  try {
    return await new Promise<string>((resolve) => {
      rl.question(question, (answer) => resolve(answer));
      muted = secret;
    });
  } finally {
    rl.close();
    if (secret) process.stdout.write("\n");
  }
}

export const loginVerb: Verb = {
  name: "login",
  summary: "log in to a registry",
  run: async (args) => {
    const parsed = parseVerb("login", USAGE, args, {
      options: { username: { type: "string", short: "u" }, password: { type: "string", short: "p" }, "password-stdin": { type: "boolean" } },
      positionals: { min: 1, max: 1 },
    });
    if (parsed === "help") return write(HELP), 0;
    const server = parsed.positionals[0]!;
    const v = parsed.values;
    if (v.password !== undefined && v["password-stdin"]) throw new HyperlabError("INVALID_ARGUMENT", "--password and --password-stdin are mutually exclusive");
    if (v["password-stdin"] && !v.username) throw new HyperlabError("INVALID_ARGUMENT", "Must provide --username with --password-stdin");
    const username = v.username ?? (await ask("Username: ", false));
    const password = v["password-stdin"] ? await readStdin() : (v.password ?? (await ask("Password: ", true)));
    if (!username) throw new HyperlabError("INVALID_ARGUMENT", "Error: Non-null Username Required");
    if (v.password !== undefined) process.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n");
    await loginToRegistry(server, { username, password });
    const file = await saveCredentials(registryDomain(server), { username, password });
    process.stderr.write(`WARNING! Your credentials are stored unencrypted in '${file}'.\n`);
    write("Login Succeeded\n");
    return 0;
  },
};
