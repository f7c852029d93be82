// `hyperlab images`: the images in this checkout's store (no VM needed).
import { nodeImageStore } from "../containers/node-store.ts";
import { ago, humanSize, table } from "./format.ts";

/** Runs `hyperlab images`. */
export async function imagesCommand(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write("Usage: hyperlab images\n\nLists the container images hyperlab can run (built from Debian packages by 'npm run images').\n");
    return 0;
  }
  const images = await nodeImageStore().list();
  const rows = images.map((i) => [
    i.repository,
    i.tag,
    i.id.replace("sha256:", "").slice(0, 12),
    i.created ? ago(new Date(i.created)) : "N/A",
    humanSize(i.size),
  ]);
  process.stdout.write(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows));
  return 0;
}
