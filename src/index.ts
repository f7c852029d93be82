// `hyperlab`: the package's whole export list for Node programs
// (docs/node-api.md). The hypervisor and its VMs, the container engine of
// each VM with Node's image store, and the coded error. Test helpers are
// `hyperlab/testing` (src/testing/); the page's element is not part of the
// package.

// The hypervisor and its VMs.
export { Hypervisor } from "./hypervisor/hypervisor.ts";
export type { CreateVmOptions, HypervisorEvent, HypervisorOptions, HypervisorStats, PageSharing, RestoreOptions, StartInfo } from "./hypervisor/hypervisor.ts";
export { Vm } from "./hypervisor/vm.ts";
export type { VmEvent, VmInfo, VmMetrics, VmOrigin, VmSnapshotOptions } from "./hypervisor/vm.ts";
export { VM_STATES } from "./hypervisor/vm-state.ts";
export type { VmState } from "./hypervisor/vm-state.ts";
export type { FileShare, VmExecOptions } from "./hypervisor/worker-protocol.ts";
export type { ExecResult, GuestListener, GuestProcess, GuestStat, GuestStream, StreamTarget } from "./guest/agent.ts";

// Containers in the VMs.
export { nodeContainers } from "./containers/node-containers.ts";
export type { NodeContainersOptions } from "./containers/node-containers.ts";
export { DEFAULT_VM, VmContainers } from "./containers/vm-containers.ts";
export type { VmContainer } from "./containers/vm-containers.ts";
export { ContainerEngine, RUNTIMES } from "./containers/engine.ts";
export type {
  Attachment,
  Container,
  ContainerEvent,
  ContainerExecOptions,
  ContainerStats,
  ContainerStatus,
  CreateOptions,
  ExecProcess,
  LogEntry,
  Runtime,
  StartOptions,
  WaitCondition,
} from "./containers/engine.ts";
export { defaultDataRoot, defaultImageLayoutDir, nodeImageStore } from "./containers/node-store.ts";
export type { ImageInfo, ImageStore } from "./containers/image-store.ts";
export type { Limits } from "./containers/limits.ts";
export type { MountRequest } from "./containers/mounts.ts";
export type { Network, NetworkOptions } from "./containers/network.ts";

// Where the guest and its boot snapshots come from in Node.
export { defaultImageDir, loadNodeImage } from "./hardware/node.ts";
export { snapshotCacheDir } from "./hypervisor/boot-snapshot-node.ts";

// Errors.
export { HyperlabError, isHyperlabError } from "./errors.ts";
export type { ErrorCode } from "./errors.ts";
