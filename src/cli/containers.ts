// The container verbs that need a running daemon: ps, exec, logs, stop, kill,
// rm, inspect, stats. Docker's flags, columns and exit codes. A table: verb →
// handler.
import { HyperlabError } from "../errors.ts";
import type { ContainerStats } from "../containers/engine.ts";
import { API_VERSION, type ContainerJson, type DaemonClient, defaultSocketPath, findDaemon } from "./daemon-api.ts";
import { openStream } from "./daemon-attach.ts";
import { attachTerminal, terminalSize, writeOutput } from "./terminal.ts";
import { ago, humanSize, table } from "./format.ts";

async function daemon(verb: string): Promise<DaemonClient> {
  const client = await findDaemon();
  if (!client) {
    throw new HyperlabError(
      "INVALID_ARGUMENT",
      `'hyperlab ${verb}' needs a running daemon (none answers on ${defaultSocketPath()}). Start one with 'hyperlab daemon &': ` +
        `without it each command boots its own guest, and containers do not outlive the command that ran them.`,
    );
  }
  return client;
}

function status(c: ContainerJson): string {
  if (c.status === "running") return `Up ${ago(new Date(c.startedAt!)).replace(/ ago$/, "")}`;
  if (c.status === "exited") return `Exited (${c.exitCode}) ${ago(new Date(c.finishedAt!))}`;
  return "Created";
}

function need(args: string[], n: number, usage: string): void {
  if (args.length < n) throw new HyperlabError("INVALID_ARGUMENT", `usage: hyperlab ${usage}`);
}

const write = (s: string) => void process.stdout.write(s);

/**
 * `VERB [FLAG VALUE] CONTAINER...`: POSTs `path(ref, value)` for each
 * container and prints its reference, as Docker does.
 */
async function forEachRef(verb: string, args: string[], flag: string, fallback: string, path: (ref: string, value: string) => string): Promise<number> {
  const at = args.indexOf(flag);
  const value = at >= 0 ? args[at + 1] : fallback;
  if (value === undefined) throw new HyperlabError("INVALID_ARGUMENT", `flag ${flag} needs a value`);
  const refs = args.filter((_, i) => at < 0 || (i !== at && i !== at + 1));
  need(refs, 1, `${verb} [${flag} VALUE] CONTAINER...`);
  const d = await daemon(verb);
  for (const ref of refs) {
    await d.call("POST", path(ref, value));
    write(`${ref}\n`);
  }
  return 0;
}
const enc = encodeURIComponent;

/** Each verb: its handler, resolving to the exit status. */
export const containerVerbs: Record<string, { help: string; run: (args: string[]) => Promise<number> }> = {
  ps: {
    help: "list containers (-a: all, not only running)",
    run: async (args) => {
      const all = args.includes("-a") || args.includes("--all");
      const list = await (await daemon("ps")).call<ContainerJson[]>("GET", `/containers${all ? "?all=1" : ""}`);
      const rows = list.map((c) => [c.id.slice(0, 12), c.image, JSON.stringify(c.command.join(" ").slice(0, 20)), ago(new Date(c.createdAt)), status(c), "", c.name]);
      write(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows));
      return 0;
    },
  },
  exec: {
    help: "run a command in a running container (-i: keep stdin open, -t: allocate a terminal, -e KEY=VALUE)",
    run: async (args) => {
      const o: { interactive?: boolean; tty?: boolean; env: string[] } = { env: [] };
      let i = 0;
      for (; i < args.length && args[i]!.startsWith("-"); i++) {
        const arg = args[i]!;
        const letters = /^-[a-zA-Z]+$/.test(arg) ? [...arg.slice(1)] : [];
        if (letters.length && letters.every((c) => c === "i" || c === "t")) {
          if (letters.includes("i")) o.interactive = true;
          if (letters.includes("t")) o.tty = true;
        } else if (arg === "--interactive") o.interactive = true;
        else if (arg === "--tty") o.tty = true;
        else if (arg === "-e" || arg === "--env") {
          const v = args[++i];
          if (v === undefined) throw new HyperlabError("INVALID_ARGUMENT", `flag ${arg} needs a value`);
          o.env.push(v);
        } else if (arg.startsWith("--env=")) o.env.push(arg.slice("--env=".length));
        else throw new HyperlabError("INVALID_ARGUMENT", `unknown flag: ${arg}. Usage: hyperlab exec [-i] [-t] [-e KEY=VALUE] CONTAINER COMMAND [ARG...]`);
      }
      const rest = args.slice(i);
      need(rest, 2, "exec [-i] [-t] [-e KEY=VALUE] CONTAINER COMMAND [ARG...]");
      const [ref, ...argv] = rest;
      const client = await daemon("exec");
      if (!o.interactive && !o.tty) {
        return client.stream("POST", `/containers/${enc(ref!)}/exec`, { argv, env: o.env }, writeOutput);
      }
      const options = { argv, env: o.env, interactive: o.interactive, tty: o.tty ? terminalSize() : undefined };
      const stream = await openStream(client.socketPath, `/${API_VERSION}/containers/${enc(ref!)}/exec?options=${encodeURIComponent(JSON.stringify(options))}`, writeOutput);
      return attachTerminal(stream, o);
    },
  },
  logs: {
    help: "print a container's output",
    run: async (args) => {
      need(args, 1, "logs CONTAINER");
      const logs = await (await daemon("logs")).call<Array<{ stream: 1 | 2; data: string }>>("GET", `/containers/${enc(args[0]!)}/logs`);
      for (const l of logs) writeOutput(l.stream, Buffer.from(l.data, "base64"));
      return 0;
    },
  },
  stop: {
    help: "stop containers (SIGTERM, then SIGKILL after -t seconds, default 10)",
    run: (args) => forEachRef("stop", args, "-t", "10", (ref, t) => `/containers/${enc(ref)}/stop?t=${enc(t)}`),
  },
  kill: {
    help: "send a signal to containers (-s SIGNAL, default KILL)",
    run: (args) => forEachRef("kill", args, "-s", "KILL", (ref, s) => `/containers/${enc(ref)}/kill?signal=${enc(s)}`),
  },
  rm: {
    help: "remove containers (-f: kill a running one first)",
    run: async (args) => {
      const force = args.includes("-f") || args.includes("--force");
      const refs = args.filter((a) => !a.startsWith("-"));
      need(refs, 1, "rm [-f] CONTAINER...");
      const d = await daemon("rm");
      for (const ref of refs) {
        await d.call("DELETE", `/containers/${enc(ref)}${force ? "?force=1" : ""}`);
        write(`${ref}\n`);
      }
      return 0;
    },
  },
  inspect: {
    help: "print a container's details as JSON",
    run: async (args) => {
      need(args, 1, "inspect CONTAINER...");
      const d = await daemon("inspect");
      const out = [];
      for (const ref of args) out.push(await d.call("GET", `/containers/${enc(ref)}/json`));
      write(JSON.stringify(out, null, 4) + "\n");
      return 0;
    },
  },
  stats: {
    help: "print a running container's memory, CPU and pids usage",
    run: async (args) => {
      need(args, 1, "stats CONTAINER...");
      const d = await daemon("stats");
      const rows = [];
      for (const ref of args) {
        const s = await d.call<ContainerStats>("GET", `/containers/${enc(ref)}/stats`);
        rows.push([
          ref,
          `${(s.cpuUsageUs / 1e6).toFixed(2)}s`,
          `${humanSize(s.memoryBytes)} / ${s.memoryLimitBytes ? humanSize(s.memoryLimitBytes) : "-"}`,
          humanSize(s.memoryPeakBytes),
          `${s.pids}${s.pidsLimit ? ` / ${s.pidsLimit}` : ""}`,
        ]);
      }
      write(table(["CONTAINER", "CPU TIME", "MEM USAGE / LIMIT", "MEM PEAK", "PIDS"], rows));
      return 0;
    },
  },
};
