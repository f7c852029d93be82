// `hyperlab push`: an image of the store to the registry its name names
// (tag it first: hyperlab tag… or docker tag lua:5.4 localhost:5000/lua:5.4),
// as `docker push` does: layers the registry has already are not sent
// again (HEAD first), then the config and the manifest, byte for byte, so
// the image has the same digest there. Through the daemon when one runs.
import { familiarName, parseReference } from "../containers/image-reference.ts";
import { defaultDataRoot, nodeImageStore } from "../containers/node-store.ts";
import { type PushStep, pushToRegistry } from "../containers/registry-transfer.ts";
import { HyperlabError } from "../errors.ts";
import { parseVerb } from "./args.ts";
import { findDaemon } from "./daemon-client.ts";
import { credentialsFor, printPush } from "./registry-progress.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab push [OPTIONS] NAME[:TAG]";
const HELP = `Usage: ${USAGE}

Pushes an image to the registry its name names (OCI distribution API):
localhost:5000/app:1 goes to the registry at localhost:5000 as app:1. Name an
image for a registry first ('docker tag lua:5.4 localhost:5000/lua:5.4').
Credentials: those 'hyperlab login' or 'docker login' kept in
$DOCKER_CONFIG/config.json (default ~/.docker/config.json).

Options:
  -a, --all-tags   push every tag of the repository (default: NAME:latest
                   when NAME has no tag)
  -q, --quiet      print nothing but errors
`;

export const pushVerb: Verb = {
  name: "push",
  summary: "push an image to a registry",
  run: async (args) => {
    const parsed = parseVerb("push", USAGE, args, {
      options: { "all-tags": { type: "boolean", short: "a" }, quiet: { type: "boolean", short: "q" } },
      positionals: { min: 1, max: 1 },
    });
    if (parsed === "help") return write(HELP), 0;
    const ref = parseReference(parsed.positionals[0]!);
    const all = parsed.values["all-tags"] ?? false;
    if (all && ref.tag) throw new HyperlabError("INVALID_ARGUMENT", "tag can't be used with --all-tags/-a");
    const reference = all ? familiarName(ref) : `${familiarName(ref)}:${ref.tag ?? "latest"}`;
    const print = printPush(parsed.values.quiet ?? false);
    const auth = await credentialsFor(reference);
    const daemon = await findDaemon();
    if (daemon) await daemon.steps<PushStep, unknown>("POST", "/images/push", { reference, auth }, print);
    else await pushToRegistry(nodeImageStore(undefined, { dataRoot: defaultDataRoot() }), reference, print, { auth });
    return 0;
  },
};
