// Docker's exec instances: an exec is created, then started once, then
// inspected for its exit code (what `docker exec` does in three requests).
// The engine runs the process; this keeps the instance between requests, per
// engine, until its container is removed (as dockerd drops a container's
// execs with it).
import type { ContainerEngine, ExecProcess } from "../../containers/engine.ts";

/** What `POST /containers/{id}/exec` asked for. */
export interface ExecConfig {
  cmd: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  tty: boolean;
  attachStdin: boolean;
  attachStdout: boolean;
  attachStderr: boolean;
  /** [rows, cols] of its terminal */
  consoleSize?: [number, number];
}

/** One exec instance, created and maybe started. */
export interface ExecInstance {
  id: string;
  containerId: string;
  config: ExecConfig;
  started: boolean;
  running: boolean;
  exitCode: number | null;
  /** its PID as the VM sees it, once known (0 before) */
  pid: number;
  process?: ExecProcess;
  /** ms since 1970 when it ended (finished instances are dropped a while later) */
  endedAt?: number;
}

/** How long a finished instance can still be inspected (dockerd collects them after minutes too). */
const KEEP_FINISHED_MS = 10 * 60_000;

/** Per engine: exec id → instance. */
const registries = new WeakMap<ContainerEngine, Map<string, ExecInstance>>();

/** The exec instances of `engine`'s containers (made on first use; a removed container's go with it). */
export function execInstances(engine: ContainerEngine): Map<string, ExecInstance> {
  let map = registries.get(engine);
  if (!map) {
    const instances = new Map<string, ExecInstance>();
    engine.onEvent((e) => {
      if (e.action !== "destroy") return;
      for (const [id, x] of instances) if (x.containerId === e.id) instances.delete(id);
    });
    registries.set(engine, (map = instances));
  }
  const now = Date.now();
  for (const [id, x] of map) if (x.endedAt !== undefined && now - x.endedAt > KEEP_FINISHED_MS) map.delete(id);
  return map;
}

/** The ids of a container's running execs, as inspect's ExecIDs lists them (null when none, as dockerd). */
export function runningExecIds(engine: ContainerEngine, containerId: string): string[] | null {
  const ids = [...(registries.get(engine)?.values() ?? [])].filter((x) => x.containerId === containerId && x.running).map((x) => x.id);
  return ids.length ? ids : null;
}
