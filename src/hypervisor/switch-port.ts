// One VM's port on a hypervisor network, in the VM's worker. The network's
// switch is distributed over its ports: each port has a MessagePort to every
// other member's port (wired by the hypervisor, networks.ts), learns which
// peer holds which MAC from the frames it receives, sends a unicast frame to
// the peer that holds its destination and floods the others (broadcast,
// multicast, unknown) to every peer. Frames go worker to worker, never through
// the host's thread.

/** A MessagePort as both Node's worker_threads and the DOM have it. */
export interface FramePort {
  postMessage(message: unknown, transfer?: ArrayBuffer[] | readonly ArrayBuffer[]): void;
  close(): void;
  addEventListener?(type: "message", listener: (e: { data: unknown }) => void): void;
  on?(type: "message", listener: (data: unknown) => void): void;
  start?(): void;
  unref?(): void;
}

/** Frames and bytes through a port, both ways. */
export interface PortCounters {
  framesOut: number;
  bytesOut: number;
  framesIn: number;
  bytesIn: number;
  /** frames sent to no peer (no peers, or the destination is this VM's own MAC) */
  dropped: number;
}

/** A MAC as `aa:bb:cc:dd:ee:ff`. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** A VM's port on a network's switch: frames from its card go out to peers, frames from peers go to its card. */
export class SwitchPort {
  private readonly peers = new Map<string, FramePort>();
  /** learned: MAC (as a 48-bit number) → peer id */
  private readonly macs = new Map<number, string>();
  readonly counters: PortCounters = { framesOut: 0, bytesOut: 0, framesIn: 0, bytesIn: 0, dropped: 0 };

  /** `toCard` hands a frame to this VM's card; `open()` says whether frames may pass now (not while the VM is paused). */
  constructor(
    private readonly toCard: (frame: Uint8Array) => void,
    private readonly open: () => boolean = () => true,
  ) {}

  /** Connects a peer's port (replacing one with that id). Legal any time. */
  addPeer(id: string, port: FramePort): void {
    this.dropPeer(id);
    this.peers.set(id, port);
    const receive = (data: unknown) => this.fromPeer(id, data);
    if (port.on) port.on("message", receive);
    else port.addEventListener?.("message", (e) => receive(e.data));
    port.start?.();
    // A port must not keep the worker alive on its own.
    port.unref?.();
  }

  /** Disconnects a peer and forgets its MACs. Legal any time; an unknown id is a no-op. */
  dropPeer(id: string): void {
    const port = this.peers.get(id);
    if (!port) return;
    this.peers.delete(id);
    port.close();
    for (const [mac, peer] of this.macs) if (peer === id) this.macs.delete(mac);
  }

  /** Disconnects every peer. */
  close(): void {
    for (const id of [...this.peers.keys()]) this.dropPeer(id);
  }

  /** The ids of the connected peers. */
  peerIds(): string[] {
    return [...this.peers.keys()];
  }

  /** A frame the VM's card sent: to the peer holding its destination MAC, else to every peer. */
  fromCard(frame: Uint8Array): void {
    if (!this.open() || frame.length < 14) return;
    const dest = macKey(frame, 0);
    const known = this.macs.get(dest);
    const targets = known !== undefined ? [known] : [...this.peers.keys()];
    if (targets.length === 0) {
      this.counters.dropped++;
      return;
    }
    this.counters.framesOut++;
    this.counters.bytesOut += frame.length;
    targets.forEach((id, i) => {
      // The last peer gets the frame's own buffer, moved; the others a copy each.
      const last = i === targets.length - 1;
      const copy = last && frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength ? frame : frame.slice();
      this.peers.get(id)!.postMessage(copy, [copy.buffer as ArrayBuffer]);
    });
  }

  private fromPeer(id: string, data: unknown): void {
    if (!(data instanceof Uint8Array) || data.length < 14 || !this.peers.has(id)) return;
    // The source MAC is behind this peer's port (group addresses never are).
    if ((data[6]! & 1) === 0) this.macs.set(macKey(data, 6), id);
    if (!this.open()) return;
    this.counters.framesIn++;
    this.counters.bytesIn += data.length;
    this.toCard(data);
  }
}

function macKey(frame: Uint8Array, at: number): number {
  return frame[at]! * 2 ** 40 + frame[at + 1]! * 2 ** 32 + ((frame[at + 2]! << 24) >>> 0) + (frame[at + 3]! << 16) + (frame[at + 4]! << 8) + frame[at + 5]!;
}
