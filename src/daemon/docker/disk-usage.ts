// `GET /system/df?type=` (`docker system df [-v]`): the images (their sizes,
// the part shared with other images, how many containers use each), the
// containers of Docker's VM with what each wrote to its root filesystem
// (SizeRw: its overlay's upper layer, measured in the guest), the volumes
// (their files' size and how many containers mount each), and no build cache.
import type { Container } from "../../containers/engine.ts";
import { HyperlabError } from "../../errors.ts";
import { type DockerRoute, type RouteCall, sendJson } from "./api.ts";
import { summary } from "./containers.ts";
import { imageSummary, imageUsers, sharedSizes, storeOf } from "./images.ts";
import { volumeUsage } from "./volumes.ts";

const TYPES = ["container", "image", "volume", "build-cache"] as const;

/** What one container wrote (0 when its VM cannot be asked: paused or stopped). */
async function sizeRw(call: RouteCall, c: Container): Promise<number> {
  try {
    return await call.api.engine().sizeRw(c.id);
  } catch {
    return 0;
  }
}

async function diskUsage(call: RouteCall): Promise<void> {
  const asked = call.query.getAll("type");
  for (const t of asked) if (!(TYPES as readonly string[]).includes(t)) throw new HyperlabError("INVALID_ARGUMENT", `unknown object type: ${t} (use ${TYPES.join(", ")})`);
  const wants = (t: (typeof TYPES)[number]) => asked.length === 0 || asked.includes(t);
  const out: Record<string, unknown> = {};
  if (wants("image")) {
    const images = await storeOf(call).images();
    const shared = sharedSizes(images);
    const users = imageUsers(call);
    const layers = new Map(images.flatMap((i) => i.layers.map((l) => [l.digest, l.size] as const)));
    out.LayersSize = [...layers.values()].reduce((n, s) => n + s, 0);
    out.Images = images.map((i) => imageSummary(i, call.version, { containers: users(i.id).length, sharedSize: shared.get(i.id) ?? 0 }));
  }
  if (wants("container")) {
    const { containers, vm } = call.api.context;
    const list = containers.containersOf(containers.vm(vm), { all: true });
    out.Containers = await Promise.all(
      list.map(async (c) => {
        const rw = await sizeRw(call, c);
        return { ...summary(c), ...(rw ? { SizeRw: rw } : {}), SizeRootFs: rw + c.image.size };
      }),
    );
  }
  if (wants("volume")) out.Volumes = await volumeUsage(call);
  if (wants("build-cache")) {
    out.BuildCache = [];
    out.BuilderSize = 0;
  }
  sendJson(call.res, 200, out);
}

/** The disk usage route. */
export const diskUsageRoutes: DockerRoute[] = [["GET", /^\/system\/df$/, diskUsage]];
