// `hyperlab pull`: an image from the registry its name names
// (localhost:5000/app:1) into the image store, as `docker pull` does; a
// Docker Hub name (busybox, lua:5.4) from the built-in images, since
// hyperlab reaches no registry on the internet. Through the daemon when one
// runs (its store), else into the default data root's store. Credentials
// come from docker's config.json ('hyperlab login' or 'docker login').
import { familiarString, DEFAULT_DOMAIN, parseReference } from "../containers/image-reference.ts";
import type { PullStep } from "../containers/image-store.ts";
import { defaultDataRoot, nodeImageStore } from "../containers/node-store.ts";
import { pullFromRegistry } from "../containers/registry-transfer.ts";
import { parseVerb } from "./args.ts";
import { findDaemon } from "./daemon-client.ts";
import { credentialsFor, printPull } from "./registry-progress.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab pull [OPTIONS] NAME[:TAG|@DIGEST]";
const HELP = `Usage: ${USAGE}

Pulls an image from a registry (OCI distribution API) into the image store:
the name says which registry (localhost:5000/app:1; a registry on this
machine is spoken to in plain http, any other in https). Layers the store
has already are not fetched again; each one fetched is checked against its
digest, and the image is stored only once all of it arrived. An image index
gives its linux/386 image (the guest is a 32-bit x86 PC). A Docker Hub name
(busybox, lua:5.4) comes from the built-in images instead.
Credentials: those 'hyperlab login' or 'docker login' kept in
$DOCKER_CONFIG/config.json (default ~/.docker/config.json).

Options:
  -q, --quiet   print only the image's name
`;

export const pullVerb: Verb = {
  name: "pull",
  summary: "pull an image from a registry",
  run: async (args) => {
    const parsed = parseVerb("pull", USAGE, args, { options: { quiet: { type: "boolean", short: "q" } }, positionals: { min: 1, max: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const quiet = parsed.values.quiet ?? false;
    const ref = parseReference(parsed.positionals[0]!);
    if (!ref.tag && !ref.digest) ref.tag = "latest";
    const reference = familiarString(ref);
    const print = printPull(quiet);
    const daemon = await findDaemon();
    const auth = await credentialsFor(reference);
    if (daemon) await daemon.steps<PullStep, unknown>("POST", "/images/pull", { reference, auth }, print);
    else {
      const store = nodeImageStore(undefined, { dataRoot: defaultDataRoot() });
      if (ref.domain === DEFAULT_DOMAIN) await store.pull(reference, print);
      else await pullFromRegistry(store, reference, print, { auth });
    }
    // As docker pull: the full name last.
    write(`${ref.domain === DEFAULT_DOMAIN ? `docker.io/${ref.path}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}` : reference}\n`);
    return 0;
  },
};
