// `hyperlab images`: the daemon's images (GET /v1/images) when a daemon
// runs, so a `docker tag` or `docker load` shows here too; without one, the
// same store read directly (the built-in images under the default data root).
import type { ImageInfo } from "../containers/image-store.ts";
import { defaultDataRoot, nodeImageStore } from "../containers/node-store.ts";
import { parseVerb } from "./args.ts";
import { findDaemon } from "./daemon-client.ts";
import { ago, humanSize, table } from "./format.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab images [REPOSITORY[:TAG]]";
const HELP = `Usage: ${USAGE}

Lists the container images hyperlab can run, or only those of one
repository (and tag): the built-in ones (built from Debian packages by
'npm run images') and those tagged or loaded through the Docker API. While a
daemon runs they are the daemon's; otherwise those of the default data root.
`;

export const imagesVerb: Verb = {
  name: "images",
  summary: "list the container images",
  run: async (args) => {
    const parsed = parseVerb("images", USAGE, args, { options: {}, positionals: { max: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const [repository, tag] = (parsed.positionals[0] ?? "").split(":");
    const daemon = await findDaemon();
    const all = daemon ? await daemon.call<ImageInfo[]>("GET", "/images") : await nodeImageStore(undefined, { dataRoot: defaultDataRoot() }).list();
    const images = all.filter((i) => (!repository || i.repository === repository) && (!tag || i.tag === tag));
    const rows = images.map((i) => [
      i.repository,
      i.tag,
      i.id.replace("sha256:", "").slice(0, 12),
      i.created ? ago(new Date(i.created)) : "N/A",
      humanSize(i.size),
    ]);
    write(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows));
    return 0;
  },
};
