// How `hyperlab pull` and `hyperlab push` print their steps: as the docker
// CLI prints dockerd's progress stream when its output is not a terminal
// (one line per step, "ID: STATUS"; the byte counts of Downloading and
// Pushing only on a terminal, where each overwrites its line).
import type { PullStep } from "../containers/image-store.ts";
import type { RegistryAuth } from "../containers/registry.ts";
import type { PushStep } from "../containers/registry-transfer.ts";
import { DEFAULT_DOMAIN, parseReference } from "../containers/image-reference.ts";
import { readCredentials } from "../containers/node-credentials.ts";
import { humanSize } from "./format.ts";

const out = (s: string) => void process.stdout.write(s);

/** A printer of pull steps (nothing with `quiet`). */
export function printPull(quiet: boolean): (step: PullStep) => void {
  const tty = process.stdout.isTTY ?? false;
  return (step) => {
    if (quiet) return;
    if (step.kind === "start") out(`${step.tag}: Pulling from ${step.name}\n`);
    else if (step.kind === "layer") out(`${step.id}: ${step.status}\n`);
    else if (step.kind === "download") {
      if (tty) out(`\r${step.id}: Downloading ${humanSize(step.current)}/${humanSize(step.total)}${step.current >= step.total ? "\n" : ""}`);
    } else if (step.kind === "digest") out(`Digest: ${step.digest}\n`);
    else out(`Status: ${step.updated ? "Downloaded newer image" : "Image is up to date"} for ${step.name}\n`);
  };
}

/** A printer of push steps (nothing with `quiet`). */
export function printPush(quiet: boolean): (step: PushStep) => void {
  const tty = process.stdout.isTTY ?? false;
  return (step) => {
    if (quiet) return;
    if (step.kind === "start") out(`The push refers to repository [${step.repository}]\n`);
    else if (step.kind === "layer") out(`${step.id}: ${step.status}\n`);
    else if (step.kind === "upload") {
      if (tty && step.current > 0) out(`\r${step.id}: Pushing ${humanSize(step.current)}/${humanSize(step.total)}${step.current >= step.total ? "\n" : ""}`);
    } else out(`${step.tag}: digest: ${step.digest} size: ${step.size}\n`);
  };
}

/** The credentials docker's config.json keeps for the registry `reference` names (none for docker.io names). */
export async function credentialsFor(reference: string): Promise<RegistryAuth | undefined> {
  const domain = parseReference(reference).domain;
  return domain === DEFAULT_DOMAIN ? undefined : readCredentials(domain);
}
