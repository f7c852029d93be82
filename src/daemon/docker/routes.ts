// Every route of the Docker Engine API, one list per resource (each in its own file).
import type { DockerRoute } from "./api.ts";
import { containerRoutes } from "./containers.ts";
import { systemRoutes } from "./system.ts";

/** The routes the daemon and the page serve. */
export const dockerRoutes: readonly DockerRoute[] = [...systemRoutes, ...containerRoutes];
