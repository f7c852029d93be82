// Published ports in the page. A page has no host ports: a container's
// published port becomes a link, `<site>/_ports/<vm>/<port>/`, that opens in a
// new tab. The site's service worker (ports-sw.ts) catches each request under
// it and asks the pages which one publishes that port; that page relays the
// request to the container through the VM's agent (Vm.connect to the
// container's address and port) as HTTP/1.1, keeping connections alive for
// the next request, and sends the answer back piece by piece. Host ports
// here are the page's own numbers per VM (-p 8080:80 → /_ports/<vm>/8080/;
// -p 80 → a free one from 32768), so two containers can publish port 80.
import type { PortPublisher, PortTarget, PublishedPort } from "../containers/ports.ts";
import { HyperlabError } from "../errors.ts";
import type { Hypervisor } from "../hypervisor/hypervisor.ts";
import type { Vm } from "../hypervisor/vm.ts";
import { guestAssetUrl, llhttpWasmUrl } from "./assets.ts";
import { Http1Connection, type ResponseHead, ResponseParsers } from "./http1-client.ts";
import { PORTS_PREFIX, PORTS_SW_FILE, type PortAnswer, type PortQuery, type PortReply, type PortRequest } from "./ports-protocol.ts";

/** The first port `-p CONTAINERPORT` gets in the page (Docker's ephemeral range starts there too). */
const FIRST_FREE_PORT = 32768;
/** Idle keep-alive connections kept per published port. */
const MAX_IDLE = 8;

/** One published port of a page VM. */
interface PortEntry {
  vm: Vm;
  containerId: string;
  containerName: string;
  ipAddress: string;
  containerPort: number;
  /** connections to the container's server that may carry the next request */
  idle: Http1Connection[];
}

/** Whether links to published ports can work here, and why not. */
export interface PortLinks {
  ready: boolean;
  /** why they cannot (no service worker in this browser, a page served from another site, …) */
  reason?: string;
}

/** The published ports of the page's VMs and the relay that serves their links. */
export class PagePorts {
  /** VM name → host port → what it relays to */
  private readonly table = new Map<string, Map<number, PortEntry>>();
  private parsers: Promise<ResponseParsers> | undefined;
  private worker: Promise<PortLinks> | undefined;
  private readonly listeners = new Set<() => void>();

  /** The site's root (where ports-sw.js and _ports/ are): beside the site's assets folder. */
  readonly siteRoot: string = new URL("../", guestAssetUrl("manifest.json") ?? new URL("./", location.href).href).href;

  /** The publisher of `vm`'s containers' ports (given to its container engine). */
  publisher(vm: Vm): PortPublisher {
    return {
      publish: async (target) => this.publish(vm, target),
      unpublish: (containerId) => this.unpublish(vm.name, containerId),
    };
  }

  /** The link of a published port: `<site>/_ports/<vm>/<port>/`. */
  url(vm: string, hostPort: number): string {
    return new URL(`${PORTS_PREFIX}${encodeURIComponent(vm)}/${hostPort}/`, this.siteRoot).href;
  }

  /** Calls `listener` after each publish and unpublish. Returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /**
   * Registers the site's service worker (once per page) and listens for its
   * requests; resolves with whether links work here and, if not, why.
   */
  links(): Promise<PortLinks> {
    this.worker ??= this.register();
    return this.worker;
  }

  private async register(): Promise<PortLinks> {
    if (!("serviceWorker" in navigator)) return { ready: false, reason: "this browser gives the page no service worker (a private window, or an insecure http:// address other than localhost)" };
    const script = new URL(PORTS_SW_FILE, this.siteRoot);
    if (script.origin !== location.origin) return { ready: false, reason: `the hyperlab site (${script.origin}) is not this page's (${location.origin}): its service worker cannot serve this page's links` };
    navigator.serviceWorker.addEventListener("message", (e: MessageEvent) => this.onMessage(e));
    // Messages from the worker wait until the page says it listens.
    navigator.serviceWorker.startMessages();
    try {
      await navigator.serviceWorker.register(script.href, { scope: this.siteRoot });
      await navigator.serviceWorker.ready;
      return { ready: true };
    } catch (err) {
      return { ready: false, reason: `the site's service worker (${script.href}) could not be registered: ${(err as Error).message}` };
    }
  }

  private publish(vm: Vm, target: PortTarget): PublishedPort[] {
    let ports = this.table.get(vm.name);
    if (!ports) this.table.set(vm.name, (ports = new Map()));
    const taken = new Set(ports.keys());
    const chosen: Array<[number, PortTarget["bindings"][number]]> = [];
    for (const b of target.bindings) {
      let port = b.hostPort;
      if (port === 0) for (port = FIRST_FREE_PORT; taken.has(port); port++);
      else if (taken.has(port)) {
        const owner = ports.get(port);
        throw new HyperlabError(
          "PORT_UNAVAILABLE",
          `cannot publish port ${port} for container ${target.containerName}: port ${port} of VM ${vm.name} is already allocated${owner ? ` (container ${owner.containerName} publishes it)` : ""}; choose another host port, or give only the container port to get a free one`,
          { hostPort: port },
        );
      }
      taken.add(port);
      chosen.push([port, b]);
    }
    for (const [port, b] of chosen) {
      ports.set(port, { vm, containerId: target.containerId, containerName: target.containerName, ipAddress: target.ipAddress, containerPort: b.containerPort, idle: [] });
    }
    void this.links();
    this.changed();
    // The page's ports are not on any address: the link is what reaches them.
    return chosen.map(([hostPort, b]) => ({ hostIp: "", hostPort, containerPort: b.containerPort, protocol: "tcp" }));
  }

  private unpublish(vm: string, containerId: string): void {
    const ports = this.table.get(vm);
    if (!ports) return;
    for (const [port, e] of ports) {
      if (e.containerId !== containerId) continue;
      ports.delete(port);
      for (const c of e.idle.splice(0)) c.close();
    }
    this.changed();
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  private onMessage(e: MessageEvent): void {
    const msg = e.data as PortQuery | PortRequest | undefined;
    const reply = e.ports[0];
    if (!reply || !msg || typeof msg !== "object") return;
    if (msg.type === "hyperlab-port-query") {
      const answer: PortAnswer = { type: "port-answer", published: !!this.table.get(msg.vm)?.has(msg.port) };
      reply.postMessage(answer);
    } else if (msg.type === "hyperlab-port-request") {
      void this.relay(msg, reply);
    }
  }

  /** One request from the service worker, to the container and back. */
  private async relay(req: PortRequest, reply: MessagePort): Promise<void> {
    const send = (m: PortReply, transfer: Transferable[] = []) => reply.postMessage(m, transfer);
    const entry = this.table.get(req.vm)?.get(req.port);
    if (!entry) {
      send({ type: "error", status: 502, message: `no container publishes port ${req.port} in VM ${req.vm} of this page (it stopped or was removed)` });
      return reply.close();
    }
    const headers = req.headers.filter(([k]) => !/^(host|accept-encoding)$/i.test(k));
    // The browser's bodies are not decoded when a service worker builds the answer: ask the server not to compress.
    headers.push(["Host", req.host], ["Accept-Encoding", "identity"], ["X-Forwarded-Host", req.host], ["X-Forwarded-Prefix", req.prefix.replace(/\/$/, "")], ["X-Forwarded-Proto", "https"]);
    let conn: Http1Connection;
    try {
      conn = entry.idle.pop() ?? (await this.open(entry));
    } catch (err) {
      send({ type: "error", status: 502, message: `could not reach port ${entry.containerPort} of container ${entry.containerName} (${entry.ipAddress}): ${(err as Error).message}` });
      return reply.close();
    }
    let started = false;
    conn.send(
      { method: req.method, target: req.target, headers, body: req.body ? new Uint8Array(req.body) : undefined },
      {
        head: (h: ResponseHead) => {
          started = true;
          send({ type: "head", status: h.status, statusText: h.statusText, headers: h.headers });
        },
        body: (d) => {
          const copy = d.slice().buffer as ArrayBuffer;
          send({ type: "body", data: copy }, [copy]);
        },
        end: () => {
          send({ type: "end" });
          reply.close();
          if (conn.reusable && entry.idle.length < MAX_IDLE && this.table.get(req.vm)?.get(req.port) === entry) entry.idle.push(conn);
          else conn.close();
        },
        error: (err) => {
          send({ type: "error", status: started ? 0 : 502, message: err.message });
          reply.close();
        },
      },
    );
  }

  private async open(entry: PortEntry): Promise<Http1Connection> {
    this.parsers ??= (async () => {
      const url = llhttpWasmUrl();
      const response = await fetch(url);
      if (!response.ok) throw new Error(`the server answered ${url} with HTTP ${response.status}`);
      return ResponseParsers.instantiate(await WebAssembly.compile(await response.arrayBuffer()));
    })();
    this.parsers.catch(() => (this.parsers = undefined));
    const [parsers, stream] = await Promise.all([this.parsers, entry.vm.connect({ host: entry.ipAddress, port: entry.containerPort })]);
    return new Http1Connection(stream, parsers);
  }

  /** The published ports of VM `vm`, by host port. */
  list(vm: string): Array<{ hostPort: number; containerPort: number; containerId: string; url: string }> {
    return [...(this.table.get(vm) ?? new Map<number, PortEntry>()).entries()].map(([hostPort, e]) => ({ hostPort, containerPort: e.containerPort, containerId: e.containerId, url: this.url(vm, hostPort) }));
  }
}

const pages = new WeakMap<Hypervisor, PagePorts>();

/** The published ports of the page's hypervisor's VMs, made on first use. Legal any time. */
export function pagePorts(hypervisor: Hypervisor): PagePorts {
  let ports = pages.get(hypervisor);
  if (!ports) pages.set(hypervisor, (ports = new PagePorts()));
  return ports;
}
