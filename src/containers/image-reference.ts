// Image names as Docker reads them (the grammar of distribution/reference):
// `busybox` is `docker.io/library/busybox:latest`, `me/app` is
// `docker.io/me/app:latest`, `ghcr.io/o/r@sha256:…` keeps its registry. The
// store keeps names in Docker's short ("familiar") form: busybox:latest.
import { HyperlabError } from "../errors.ts";

/** A parsed image reference: where it lives, its path there, and a tag and/or a digest. */
export interface ImageReference {
  /** the registry: docker.io unless the name starts with one */
  domain: string;
  /** the repository's path in the registry (library/busybox) */
  path: string;
  tag?: string;
  /** sha256:<hex> of a manifest */
  digest?: string;
}

/** Docker Hub: the registry of names without one. */
export const DEFAULT_DOMAIN = "docker.io";

const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const DIGEST_RE = new RegExp(`^${DIGEST}$`);
const ID_RE = /^(?:sha256:)?[0-9a-f]{64}$/;
/** Docker's longest repository name. */
const NAME_MAX = 255;

function invalid(detail = ""): HyperlabError {
  return new HyperlabError("INVALID_ARGUMENT", `invalid reference format${detail}`);
}

/**
 * Parses a reference the way Docker's CLI and daemon do (ParseNormalizedNamed):
 * a name without a registry is Docker Hub's, a one-part name is in `library/`.
 * INVALID_ARGUMENT with Docker's words ("invalid reference format…") otherwise.
 */
export function parseReference(input: string): ImageReference {
  if (ID_RE.test(input) && !input.startsWith("sha256:")) {
    throw new HyperlabError("INVALID_ARGUMENT", `invalid repository name (${input}), cannot specify 64-byte hexadecimal strings`);
  }
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw invalid();
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new HyperlabError("INVALID_ARGUMENT", `invalid digest '${digest}': hyperlab's images are addressed by sha256:<64 hex digits>`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalid();
  }
  // The first part is a registry when it looks like a host (a dot, a port, localhost, or capitals).
  const slash = rest.indexOf("/");
  const first = slash < 0 ? "" : rest.slice(0, slash);
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  if (slash >= 0 && (/[.:]/.test(first) || first === "localhost" || first.toLowerCase() !== first)) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(domain)) throw invalid();
  }
  if (domain === "index.docker.io") domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = `library/${path}`;
  if (path.toLowerCase() !== path) throw invalid(": repository name must be lowercase");
  if (!PATH_RE.test(path)) throw invalid();
  if (`${domain}/${path}`.length > NAME_MAX) throw invalid(`: repository name must not be more than ${NAME_MAX} characters`);
  return { domain, path, tag, digest };
}

/** The repository in Docker's short form: busybox, me/app, ghcr.io/o/r. */
export function familiarName(ref: ImageReference): string {
  if (ref.domain !== DEFAULT_DOMAIN) return `${ref.domain}/${ref.path}`;
  const short = ref.path.replace(/^library\//, "");
  return short.includes("/") ? ref.path : short;
}

/** The repository with its registry: docker.io/library/busybox. */
export function fullName(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** name[:tag][@digest] in Docker's short form. */
export function familiarString(ref: ImageReference): string {
  return `${familiarName(ref)}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}

/**
 * A name as the store keys it: the short repository and a tag (latest when it
 * has neither tag nor digest), e.g. "busybox:latest". A reference with only a
 * digest stays `name@digest`.
 */
export function normalizeName(input: string): string {
  const ref = parseReference(input);
  if (!ref.tag && !ref.digest) ref.tag = "latest";
  return familiarString(ref);
}

/** Whether `input` can only be an image ID (sha256:<hex>, or 64 hex digits) rather than a name. */
export function isImageId(input: string): boolean {
  return ID_RE.test(input);
}

/** Whether `input` could be a prefix of an image ID (hex, optionally after sha256:). */
export function isIdPrefix(input: string): boolean {
  return /^(?:sha256:)?[0-9a-f]{1,64}$/.test(input);
}
