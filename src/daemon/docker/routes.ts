// Every route of the Docker Engine API, one list per resource (each in its own file).
import type { DockerRoute } from "./api.ts";
import { archiveRoutes } from "./archive.ts";
import { buildRoutes } from "./build.ts";
import { containerExtraRoutes } from "./container-extra.ts";
import { containerRoutes } from "./containers.ts";
import { diskUsageRoutes } from "./disk-usage.ts";
import { eventRoutes } from "./events.ts";
import { execRoutes } from "./exec.ts";
import { imageRoutes } from "./images.ts";
import { networkRoutes } from "./networks.ts";
import { registryRoutes } from "./registry.ts";
import { systemRoutes } from "./system.ts";
import { volumeRoutes } from "./volumes.ts";

/** The routes the daemon and the page serve. */
export const dockerRoutes: readonly DockerRoute[] = [...systemRoutes, ...containerRoutes, ...containerExtraRoutes, ...execRoutes, ...archiveRoutes, ...networkRoutes, ...registryRoutes, ...imageRoutes, ...eventRoutes, ...diskUsageRoutes, ...buildRoutes, ...volumeRoutes];
