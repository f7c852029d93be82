/**
 * Every error hyperlab raises on purpose: a stable `code` a program can test,
 * and a message that says what happened and what to do about it.
 */
export type ErrorCode =
  | "IMAGE_MISSING"
  | "IMAGE_CORRUPT"
  | "GUEST_PANIC"
  | "GUEST_BOOT_FAILED"
  | "GUEST_STOPPED"
  | "BOOT_TIMEOUT"
  | "TIMEOUT"
  | "VM_INVALID_STATE"
  | "INVALID_ARGUMENT"
  | "AGENT_GONE"
  | "AGENT_TIMEOUT"
  | "AGENT_ERROR"
  | "IMAGE_NOT_FOUND"
  | "CONTAINER_NOT_FOUND"
  | "CONTAINER_EXISTS"
  | "CONTAINER_INVALID_STATE"
  | "RUNTIME_ERROR"
  | "RESOURCE_EXHAUSTED"
  | "VM_NOT_FOUND"
  | "WORKER_DIED"
  | "SNAPSHOT_MISMATCH"
  | "SNAPSHOT_CORRUPT"
  /** the container's process could not be started (its executable is missing or not executable) */
  | "CONTAINER_START_FAILED"
  /** something asked for that hyperlab does not do (yet): a field, a flag, an endpoint */
  | "NOT_SUPPORTED"
  /** no such API endpoint */
  | "NOT_FOUND"
  /** no such file or folder in a container's files */
  | "FILE_NOT_FOUND"
  /** no exec instance by that id (Docker's exec create/start/inspect) */
  | "EXEC_NOT_FOUND"
  /** no network by that name or id */
  | "NETWORK_NOT_FOUND"
  /** a network by that name exists already */
  | "NETWORK_EXISTS"
  /** a network that cannot be removed: running containers are on it, or it is predefined */
  | "NETWORK_IN_USE"
  /** a published port cannot be opened on the host: in use, below 1024 without the right to bind it, or not an address of this machine */
  | "PORT_UNAVAILABLE"
  /** a build step failed (a RUN exited non-zero, a COPY source is missing): the build stopped there */
  | "BUILD_FAILED"
  /** no volume by that name */
  | "VOLUME_NOT_FOUND"
  /** a volume that containers use cannot be removed */
  | "VOLUME_IN_USE"
  /** a registry did not answer (nothing listens at its address, a name that does not resolve, a refused connection) */
  | "REGISTRY_UNREACHABLE"
  /** a registry refused the request for want of (valid) credentials: 401, 403, or no credentials for its challenge */
  | "REGISTRY_UNAUTHORIZED"
  /** a registry answered something the distribution API does not allow, or an error of its own */
  | "REGISTRY_ERROR"
  /** a lab file that cannot be read as a lab: each problem named with its file and line */
  | "LAB_INVALID"
  /** a lab's setup failed, so its checks could not be run */
  | "LAB_SETUP_FAILED"
  /** the host store (images, layers, blobs) cannot be written: a read-only file system or no permission */
  | "STORE_READ_ONLY";

/** The one error class of hyperlab; `code` survives worker boundaries. */
export class HyperlabError extends Error {
  override readonly name = "HyperlabError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** True when `err` is a HyperlabError, optionally with the given code. */
export function isHyperlabError(err: unknown, code?: ErrorCode): err is HyperlabError {
  return err instanceof HyperlabError && (code === undefined || err.code === code);
}
