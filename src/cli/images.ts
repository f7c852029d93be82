// `hyperlab images`: the images in this checkout's store (no VM needed).
import { nodeImageStore } from "../containers/node-store.ts";
import { parseVerb } from "./args.ts";
import { ago, humanSize, table } from "./format.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab images [REPOSITORY[:TAG]]";
const HELP = `Usage: ${USAGE}

Lists the container images hyperlab can run (built from Debian packages by
'npm run images'), or only those of one repository (and tag).
`;

export const imagesVerb: Verb = {
  name: "images",
  summary: "list the container images",
  run: async (args) => {
    const parsed = parseVerb("images", USAGE, args, { options: {}, positionals: { max: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const [repository, tag] = (parsed.positionals[0] ?? "").split(":");
    const images = (await nodeImageStore().list()).filter((i) => (!repository || i.repository === repository) && (!tag || i.tag === tag));
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
