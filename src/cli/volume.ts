// `hyperlab volume ...`: the daemon's volumes (docs/api.md). A table:
// subcommand → its usage and handler. Volumes are folders of the daemon's
// data root that outlive containers, VMs and the daemon's restarts; mount
// one with 'hyperlab run -v NAME:/path'.
import { HyperlabError } from "../errors.ts";
import type { VolumeJson } from "../daemon/v1-volumes.ts";
import { type Subcommand, type VerbOptions, type VerbSpec, runSubcommand, subcommand } from "./args.ts";
import { enc } from "./container-refs.ts";
import { type DaemonClient, needDaemon } from "./daemon-client.ts";
import { humanSize, table } from "./format.ts";
import { type Verb, write } from "./verb.ts";

const HELP = `Usage: hyperlab volume COMMAND [OPTIONS]

Manages volumes: named folders, kept in the daemon's data root, that
containers mount with 'hyperlab run -v NAME:/path' (or --mount
type=volume,source=NAME,target=/path). A volume outlives the containers that
use it and the daemon's restarts, and several containers (in any VM) can use
it at once. 'run -v NAME:/path' makes the volume if it does not exist.

Commands:
  create [--label KEY=VALUE]... [NAME]   create a volume (default name: random)
  ls [--size]                            list volumes (--size: with their sizes)
  inspect VOLUME...                      print volumes' details as JSON
  rm VOLUME...                           remove volumes (refused while a
                                         container uses one)
  prune [--all]                          remove the anonymous volumes no
                                         container uses (--all: every unused one)
`;

const daemon = (verb: string): Promise<DaemonClient> => needDaemon(verb, "Volumes are kept by the daemon.");


const sub = <O extends VerbOptions>(usage: string, spec: VerbSpec<O>, run: Subcommand["run"]): Subcommand => subcommand("volume", usage, spec, run);

/** `KEY=VALUE` labels as a map (a bare KEY is an empty value, as in Docker). */
function labels(given: unknown): Record<string, string> | undefined {
  if (!Array.isArray(given) || !given.length) return undefined;
  return Object.fromEntries(
    (given as string[]).map((l) => {
      const at = l.indexOf("=");
      if (at === 0) throw new HyperlabError("INVALID_ARGUMENT", `invalid label '${l}': use KEY=VALUE`);
      return at < 0 ? [l, ""] : [l.slice(0, at), l.slice(at + 1)];
    }),
  );
}

/** Each `volume` subcommand. */
const subcommands: Record<string, Subcommand> = {
  create: sub("create [--label KEY=VALUE]... [NAME]", { options: { label: { type: "string", multiple: true } }, positionals: { max: 1 } }, async (v, [name]) => {
    const vol = await (await daemon("volume create")).call<VolumeJson>("POST", "/volumes", { name, labels: labels(v.label) });
    write(`${vol.name}\n`);
    return 0;
  }),
  ls: sub("ls [--size]", { options: { size: { type: "boolean" } }, positionals: { max: 0 } }, async (v) => {
    const sized = v.size === true;
    const vols = await (await daemon("volume ls")).call<VolumeJson[]>("GET", `/volumes${sized ? "?size=1" : ""}`);
    const rows = vols.map((x) => [x.name, String(x.usedBy.length), ...(sized ? [humanSize(x.size ?? 0)] : []), x.mountpoint]);
    write(table(["VOLUME NAME", "CONTAINERS", ...(sized ? ["SIZE"] : []), "MOUNTPOINT"], rows));
    return 0;
  }),
  inspect: sub("inspect VOLUME...", { options: {}, positionals: { min: 1 } }, async (_v, names) => {
    const d = await daemon("volume inspect");
    const out = [];
    for (const name of names) out.push(await d.call<VolumeJson>("GET", `/volumes/${enc(name)}`));
    write(JSON.stringify(out, null, 4) + "\n");
    return 0;
  }),
  rm: sub("rm VOLUME...", { options: {}, positionals: { min: 1 } }, async (_v, names) => {
    const d = await daemon("volume rm");
    for (const name of names) {
      await d.call("DELETE", `/volumes/${enc(name)}`);
      write(`${name}\n`);
    }
    return 0;
  }),
  prune: sub("prune [--all]", { options: { all: { type: "boolean", short: "a" } }, positionals: { max: 0 } }, async (v) => {
    const r = await (await daemon("volume prune")).call<{ removed: string[]; reclaimed: number }>("POST", `/volumes/prune${v.all ? "?all=1" : ""}`);
    if (r.removed.length) write(`Deleted Volumes:\n${r.removed.join("\n")}\n\n`);
    write(`Total reclaimed space: ${humanSize(r.reclaimed)}\n`);
    return 0;
  }),
};

export const volumeVerb: Verb = {
  name: "volume",
  summary: "manage volumes: create, ls, inspect, rm, prune",
  run: (args) => runSubcommand("volume", HELP, subcommands, args),
};
