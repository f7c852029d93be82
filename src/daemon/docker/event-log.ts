// Docker's event stream, kept by the API from the daemon's start: container
// events of the Docker API's VM (from its engine) and image events (from the
// image store), in the JSON shape dockerd sends (Type, Action, Actor, scope,
// time, timeNano, and the legacy status/id/from). The last HISTORY_LIMIT
// events are kept so that `docker events --since` can replay them.
import type { ContainerEvent } from "../../containers/engine.ts";
import type { ImageEvent } from "../../containers/image-store.ts";
import type { VmContainers } from "../../containers/vm-containers.ts";

/** How many past events the log keeps for --since (dockerd keeps 256). */
export const HISTORY_LIMIT = 1024;

/** One event as dockerd sends it. */
export interface DockerEvent {
  /** legacy (API < 1.52): the action */
  status?: string;
  /** legacy: the actor's ID */
  id?: string;
  /** legacy: a container's image */
  from?: string;
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: "local";
  /** unix seconds */
  time: number;
  /** unix nanoseconds (beyond a double's exact integers: written as a bigint) */
  timeNano: bigint;
}

/** What a producer gives: the event without its times (now, unless `timeMs`). */
export type NewDockerEvent = Omit<DockerEvent, "time" | "timeNano" | "scope"> & { timeMs?: number };

/** An event as one JSON line, key order and integer nanoseconds as dockerd writes them. */
export function eventLine(e: DockerEvent): string {
  const { timeNano, ...rest } = e;
  return `${JSON.stringify(rest).slice(0, -1)},"timeNano":${timeNano}}\n`;
}

/** The container event of the engine in Docker's shape (`from` and `image`: the container's image). */
function fromContainer(e: ContainerEvent): NewDockerEvent {
  return { status: e.action, id: e.id, from: e.image, Type: "container", Action: e.action, Actor: { ID: e.id, Attributes: { ...e.attributes } }, timeMs: e.time };
}

/** The image store's event in Docker's shape. */
function fromImage(e: ImageEvent): NewDockerEvent {
  return { status: e.action, id: e.id, Type: "image", Action: e.action, Actor: { ID: e.id, Attributes: { ...e.labels, name: e.name } }, timeMs: e.time };
}

/** The Docker API's events: recorded from the start, replayed and followed by /events. */
export class DockerEventLog {
  private readonly history: DockerEvent[] = [];
  private readonly listeners = new Set<(e: DockerEvent) => void>();
  private lastNano = 0n;
  private readonly unsubscribe: Array<() => void>;

  /** Records the container events of VM `vm` and every image event of `containers`' store. */
  constructor(containers: VmContainers, vm: string) {
    this.unsubscribe = [
      containers.onEvent((from, e) => {
        if (from === vm) this.record(fromContainer(e));
      }),
      containers.store.onEvent((e) => this.record(fromImage(e))),
    ];
  }

  /** Adds an event (other producers too: networks, volumes); listeners hear it at once. */
  record(e: NewDockerEvent): DockerEvent {
    const { timeMs, ...rest } = e;
    // Strictly increasing nanoseconds keep events in order for since/until, like dockerd's clock.
    let nano = BigInt(Math.round((timeMs ?? Date.now()) * 1000)) * 1000n;
    if (nano <= this.lastNano) nano = this.lastNano + 1n;
    this.lastNano = nano;
    const event: DockerEvent = { ...rest, scope: "local", time: Number(nano / 1_000_000_000n), timeNano: nano };
    this.history.push(event);
    if (this.history.length > HISTORY_LIMIT) this.history.splice(0, this.history.length - HISTORY_LIMIT);
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // A listener's failure is its own.
      }
    }
    return event;
  }

  /** The kept events from `sinceNano` (inclusive) to `untilNano` (inclusive), oldest first. */
  past(sinceNano: bigint, untilNano?: bigint): DockerEvent[] {
    return this.history.filter((e) => e.timeNano >= sinceNano && (untilNano === undefined || e.timeNano <= untilNano));
  }

  /** Follows new events; returns the unsubscribe. */
  follow(listener: (e: DockerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** How many clients follow the events (`docker info`'s NEventsListener). */
  get followers(): number {
    return this.listeners.size;
  }

  /** Stops recording. */
  close(): void {
    for (const u of this.unsubscribe) u();
  }
}
