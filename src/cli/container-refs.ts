// The shape several container verbs share: `VERB [OPTIONS] CONTAINER...`,
// one daemon request per container, its reference printed back as Docker does.
import type { DaemonClient } from "./daemon-client.ts";
import { needDaemon } from "./daemon-client.ts";
import { write } from "./verb.ts";

/** Why the container verbs need a daemon, for their error when none runs. */
export const CONTAINERS_LIVE_IN_THE_DAEMON =
  "without it each command boots its own guest, and containers do not outlive the command that ran them.";

/** The daemon's client for a container verb. */
export function containerDaemon(verb: string): Promise<DaemonClient> {
  return needDaemon(verb, CONTAINERS_LIVE_IN_THE_DAEMON);
}

/** Sends `request(ref)` for each container in turn and prints each reference once done. */
export async function forEachContainer(verb: string, refs: string[], request: (d: DaemonClient, ref: string) => Promise<unknown>): Promise<number> {
  const d = await containerDaemon(verb);
  for (const ref of refs) {
    await request(d, ref);
    write(`${ref}\n`);
  }
  return 0;
}

/** A container reference as a path segment. */
export const enc = encodeURIComponent;

/** The API path of containers in VM `vm` (none given: the daemon's `default` VM), then `rest`. */
export function containersPath(vm: string | undefined, rest = ""): string {
  return `${vm === undefined ? "" : `/vms/${enc(vm)}`}/containers${rest}`;
}

/** The --vm option every container verb takes. */
export const VM_OPTION = { vm: { type: "string" } } as const;

/** How --vm reads in a verb's help. */
export const VM_HELP = "      --vm NAME          the VM the container is in (default: default)";
