// `docker build` on hyperlab's engine: Docker's classic builder, step by
// step. Each RUN runs in a container of the engine (crun, in the guest)
// over the layers so far; its overlay's upper folder becomes a layer (the
// guest tars it, guest-layers.ts finds its opaque folders, layer.ts turns
// overlay whiteouts into OCI ones, gzips it and takes its digests) and the
// guest keeps that folder as the unpacked layer for the steps after it.
// COPY and ADD layers are made on the host from the build context. Every
// step's result is an image state (config with history and rootfs diff
// ids, manifest) in the store; a step whose parent and instruction (and,
// for COPY and ADD, the digests of its sources) were seen before reuses
// the state it made then ("Using cache"). The cache lives in the store's
// index (see ImageStore.cachedStep), so it outlives the daemon. A failed
// step stores nothing; the steps before it stay in the cache. Progress
// goes to `onEvent` as data; the Docker API and the CLI format it.
// Nothing here needs Node.
import { HyperlabError } from "../../errors.ts";
import type { ContainerEngine } from "../engine.ts";
import { COMMIT_SCRIPT, opaqueFolders } from "../guest-layers.ts";
import { normalizeName } from "../image-reference.ts";
import { type BuiltState, type HistoryEntry, type ImageConfigFile, type ImageInfo, type ImageStore, type LayerDescriptor, type PullStep, shortId } from "../image-store.ts";
import { resolveUser } from "../users.ts";
import { type BuildContext, type FileEntry, cleanPath, contentDigest, decodeTar, hasWildcards, matchRegExp } from "./context.ts";
import { type Dockerfile, type Stage, type Step, parseDockerfile, parseTriggers } from "./dockerfile.ts";
import { type CopyItem, GZIP_LAYER_MEDIA_TYPE, type Owner, copyLayerEntries, destinationOf, joinPath, layerTar, ociLayerFromUpper, packEntries, packLayer } from "./layer.ts";
import { RootfsView } from "./rootfs.ts";
import { DEFAULT_PATH, DEFAULT_SHELL, type StageVars, applyMetadata, cacheKey, commandArgv, runCreatedBy, runEnv, stepVars } from "./steps.ts";
import { processWord } from "./words.ts";

/** Something a build reports, in order (the Docker API turns each into its JSON stream, the CLI into lines). */
export type BuildEvent =
  /** "Step 2/6 : ENV A=b" */
  | { type: "step"; n: number; total: number; text: string }
  /** "# Executing 2 build triggers" (ONBUILD of the base image) */
  | { type: "triggers"; count: number }
  /** " ---> Using cache" */
  | { type: "cache" }
  /** " ---> Running in 0123456789ab" */
  | { type: "running"; container: string }
  /** what a RUN step's command printed */
  | { type: "output"; stream: 1 | 2; data: Uint8Array }
  /** "Removing intermediate container 0123456789ab" */
  | { type: "removed"; container: string }
  /** " ---> 0123456789ab" (the step's image ID; empty for FROM scratch) */
  | { type: "image"; id: string }
  | { type: "warning"; message: string }
  /** a step of the pull of a base image the store lacked (a page pulls its images from the site's registry on first use) */
  | { type: "pull"; step: PullStep }
  /** the image is built: its ID */
  | { type: "built"; id: string }
  | { type: "tagged"; name: string };

/** What a build takes (Docker's /build parameters). */
export interface BuildOptions {
  /** the files sent with the build */
  context: BuildContext;
  /** the Dockerfile's path in the context (default "Dockerfile") */
  dockerfile?: string;
  /** names for the image (name[:tag]) */
  tags?: string[];
  /** --build-arg values (null: declared by the client without a value, which leaves the ARG's default) */
  buildArgs?: Record<string, string | null>;
  /** the stage to build up to (its name) */
  target?: string;
  /** use no cached step (new steps still enter the cache) */
  noCache?: boolean;
  /** remove each RUN's container after a successful step (default true) */
  remove?: boolean;
  /** remove it even after a failed step */
  forceRemove?: boolean;
  /** labels for the image (Docker appends them as a LABEL step) */
  labels?: Record<string, string>;
  /** the network RUN steps are on: bridge (default), none, or a user network */
  network?: string;
  /** stops the build (the client went away): the running step's container is killed */
  signal?: AbortSignal;
}

/** What a build made. */
export interface BuildResult {
  /** the image ID (digest of its config) */
  id: string;
  /** digest of its manifest */
  digest: string;
  /** its names */
  tags: string[];
}

/** ARGs every build knows without an ARG line (dockerd's proxies): never reported as unused. */
const PREDEFINED_ARGS = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"];
const MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json";

/** An image state during a build: a config (with rootfs and history), its layers and, once stored, its IDs. */
interface ImageState {
  config: ImageConfigFile;
  layers: LayerDescriptor[];
  /** the config's digest (the step's image ID); undefined for a stage FROM scratch before any step */
  id?: string;
  /** the manifest's digest and size */
  digest?: string;
  size?: number;
}

/** The Dockerfile's own failures (a step that failed) as HyperlabErrors with Docker's words. */
function buildFailed(message: string, detail: Record<string, unknown> = {}): HyperlabError {
  return new HyperlabError("BUILD_FAILED", message, detail);
}

/** Builds images with one engine (its guest runs the RUN steps) into its store. */
export class Builder {
  constructor(
    private readonly engine: ContainerEngine,
    private readonly store: ImageStore,
  ) {}

  /**
   * Builds the Dockerfile of `opts.context` (see BuildOptions), reporting
   * progress to `onEvent`. INVALID_ARGUMENT for a Dockerfile that does not
   * parse (before any step runs); BUILD_FAILED for a step that fails (a RUN
   * that exits non-zero: detail.exitCode); IMAGE_NOT_FOUND for a FROM
   * without its image. Legal while the engine's VM runs.
   */
  async build(opts: BuildOptions, onEvent: (e: BuildEvent) => void): Promise<BuildResult> {
    const run = new BuildRun(this.engine, this.store, opts, onEvent);
    return run.build();
  }
}

/** One build in progress. */
class BuildRun {
  private readonly held = new Set<string>();
  private readonly cacheEntries: Array<{ key: string; digest: string; size: number }> = [];
  private readonly views = new Map<string, Promise<RootfsView>>();
  private readonly buildArgs: Map<string, string>;
  private readonly usedArgs = new Set<string>();
  private readonly stages: Array<{ stage: Stage; state: ImageState }> = [];
  private context!: BuildContext;
  private dockerfile!: Dockerfile;
  private globalArgs = new Map<string, string | undefined>();
  private n = 0;
  private total = 0;

  constructor(
    private readonly engine: ContainerEngine,
    private readonly store: ImageStore,
    private readonly opts: BuildOptions,
    private readonly emit: (e: BuildEvent) => void,
  ) {
    this.buildArgs = new Map(Object.entries(opts.buildArgs ?? {}).filter((e): e is [string, string] => e[1] !== null && e[1] !== undefined));
  }

  async build(): Promise<BuildResult> {
    const file = this.opts.dockerfile || "Dockerfile";
    const path = cleanPath(file);
    const text = path === null ? undefined : this.opts.context.text(path);
    if (text === undefined) throw new HyperlabError("INVALID_ARGUMENT", `Cannot locate specified Dockerfile: ${file}`);
    const tags = (this.opts.tags ?? []).map((t) => {
      try {
        return normalizeName(t);
      } catch {
        throw new HyperlabError("INVALID_ARGUMENT", `invalid tag '${t}': invalid reference format (use name[:tag] in lower case)`);
      }
    });
    this.dockerfile = parseDockerfile(text, file);
    // COPY sees the context as .dockerignore leaves it (the Dockerfile was read before).
    this.context = this.opts.context.withoutIgnored().context;
    const stages = this.stagesToBuild();
    const labels = Object.entries(this.opts.labels ?? {});
    this.total = this.dockerfile.globalArgs.length + stages.reduce((n, s) => n + 1 + s.steps.length, 0) + (labels.length ? 1 : 0);
    try {
      for (const arg of this.dockerfile.globalArgs) {
        this.step(arg.text);
        for (const p of arg.pairs) {
          const value = this.buildArgs.has(p.key) ? this.buildArgs.get(p.key) : p.value !== undefined ? processWord(p.value, (n) => this.globalArgs.get(n), this.dockerfile.escape) : undefined;
          this.globalArgs.set(p.key, value);
          this.usedArgs.add(p.key);
        }
      }
      for (const stage of stages) {
        const begun = await this.from(stage);
        const vars = begun.vars;
        let state = begun.state;
        const steps = [...stage.steps];
        if (stage === stages.at(-1) && labels.length) {
          const text = `LABEL ${labels.map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(" ")}`;
          steps.push({ kind: "LABEL", line: stage.steps.at(-1)?.line ?? stage.from.line, text, pairs: labels.map(([k, v]) => ({ key: JSON.stringify(k), value: JSON.stringify(v) })) });
        }
        for (const step of steps) {
          this.checkAborted();
          this.step(step.text);
          state = await this.runStep(state, step, vars);
        }
        this.stages.push({ stage, state });
      }
      const final = this.stages.at(-1)!.state;
      if (!final.id) {
        // A stage FROM scratch with nothing after it still is an image: an empty one.
        Object.assign(final, await this.commit(final, final.config.config ?? {}, { created_by: "", empty_layer: true }));
      }
      // A client gone while the last step's changes were being taken: the build stops here, nothing tagged (as dockerd's canceled build).
      this.checkAborted();
      const unused = [...this.buildArgs.keys()].filter((k) => !this.usedArgs.has(k) && !PREDEFINED_ARGS.includes(k));
      if (unused.length) this.emit({ type: "warning", message: `One or more build-args [${unused.join(" ")}] were not consumed` });
      await this.store.commitBuild({
        cache: this.cacheEntries,
        image: { id: final.id!, digest: final.digest!, size: final.size!, names: tags, labels: final.config.config?.Labels ?? {} },
      });
      this.emit({ type: "built", id: final.id! });
      for (const t of tags) this.emit({ type: "tagged", name: t });
      return { id: final.id!, digest: final.digest!, tags };
    } catch (err) {
      // What the steps before the failure made stays cached, as with dockerd.
      if (this.cacheEntries.length) await this.store.commitBuild({ cache: this.cacheEntries }).catch(() => {});
      throw err;
    } finally {
      this.store.releaseBuildBlobs(this.held);
    }
  }

  /** The stages up to the target (all of them without one), as the classic builder builds them. */
  private stagesToBuild(): Stage[] {
    const stages = this.dockerfile.stages;
    const target = this.opts.target;
    if (!target) return stages;
    const at = stages.findIndex((s) => s.name === target.toLowerCase());
    if (at < 0) throw new HyperlabError("INVALID_ARGUMENT", `failed to reach build target ${target} in Dockerfile: ${this.dockerfile.file} has ${stages.some((s) => s.name) ? `the stages ${stages.filter((s) => s.name).map((s) => s.name).join(", ")}` : "no named stages"}`);
    return stages.slice(0, at + 1);
  }

  private step(text: string): void {
    this.emit({ type: "step", n: ++this.n, total: this.total, text });
  }

  private checkAborted(): void {
    if (this.opts.signal?.aborted) throw new HyperlabError("BUILD_FAILED", "the build was canceled (its client went away)");
  }

  /** A stage's FROM: its base image (another stage, scratch or an image of the store) and the ONBUILD triggers it brings. */
  private async from(stage: Stage): Promise<{ state: ImageState; vars: StageVars }> {
    const from = stage.from;
    this.step(from.text);
    const globals = (n: string) => this.globalArgs.get(n);
    const name = processWord(from.image, globals, this.dockerfile.escape);
    if (from.platform !== undefined) {
      const platform = processWord(from.platform, globals, this.dockerfile.escape);
      if (!/^linux(\/(386|i386))?$/.test(platform)) throw new HyperlabError("NOT_SUPPORTED", `FROM --platform=${platform} (line ${from.line} of ${this.dockerfile.file}): hyperlab builds linux/386 images only (its guest is a 32-bit x86 PC)`);
    }
    if (!name) throw new HyperlabError("INVALID_ARGUMENT", `FROM on line ${from.line} of ${this.dockerfile.file} names no image ('${from.image}' is empty once its variables are expanded)`);
    const vars: StageVars = { args: new Map(), cmdSet: false };
    const earlier = this.stages.find((s) => s.stage.name === name.toLowerCase());
    let state: ImageState;
    if (earlier) state = { ...earlier.state, config: structuredClone(earlier.state.config) };
    else if (name === "scratch") state = { config: { architecture: "386", os: "linux", config: { Env: [DEFAULT_PATH] }, rootfs: { type: "layers", diff_ids: [] }, history: [] }, layers: [] };
    else {
      const { image } = await this.store.ensure(name, (step) => this.emit({ type: "pull", step })).catch((err: unknown) => {
        if (err instanceof HyperlabError && err.code === "IMAGE_NOT_FOUND") {
          throw new HyperlabError("IMAGE_NOT_FOUND", `FROM ${name} (line ${from.line} of ${this.dockerfile.file}): ${err.message}`, err.detail);
        }
        throw err;
      });
      state = { config: structuredClone(image.config), layers: await this.store.layerDescriptors(image.digest), id: image.id, digest: image.digest, size: 0 };
    }
    this.emit({ type: "image", id: state.id ? shortId(state.id) : "" });
    // The triggers a base image left (ONBUILD) run first; the new image does not inherit them.
    const triggers = state.config.config?.OnBuild ?? [];
    if (triggers.length) {
      this.emit({ type: "triggers", count: triggers.length });
      const steps = parseTriggers(triggers, this.dockerfile.file, from.line, this.dockerfile.escape);
      for (const step of steps) state = await this.runStep(state, step, vars);
    }
    if (state.config.config?.OnBuild?.length) {
      state.config = { ...state.config, config: { ...state.config.config, OnBuild: undefined } };
      delete state.config.config!.OnBuild;
    }
    return { state, vars };
  }

  /** One step over `state`: from the cache, or done; reports the new image ID. */
  private async runStep(state: ImageState, step: Step, vars: StageVars): Promise<ImageState> {
    let next: ImageState;
    if (step.kind === "RUN") next = await this.run(state, step, vars);
    else if (step.kind === "COPY" || step.kind === "ADD") next = await this.copy(state, step, vars);
    else next = await this.metadata(state, step, vars);
    this.emit({ type: "image", id: shortId(next.id!) });
    return next;
  }

  /** The cached result of `key` (and reports it), unless --no-cache. */
  private async cached(key: string): Promise<ImageState | undefined> {
    if (this.opts.noCache) return undefined;
    const hit = await this.store.cachedStep(key);
    if (!hit) return undefined;
    this.emit({ type: "cache" });
    this.cacheEntries.push({ key, digest: hit.digest, size: hit.size });
    return stateOf(hit);
  }

  private async metadata(state: ImageState, step: Step, vars: StageVars): Promise<ImageState> {
    if (step.kind === "ARG") for (const p of step.pairs) this.usedArgs.add(p.key);
    const result = applyMetadata(state.config, step, vars, { escape: this.dockerfile.escape, buildArgs: this.buildArgs, globalArgs: this.globalArgs });
    const key = await cacheKey(state.id ?? "scratch", { step: result.key, author: result.author });
    const hit = await this.cached(key);
    if (hit) return hit;
    const next = await this.commit(state, result.config, { created_by: result.createdBy, empty_layer: true }, undefined, result.author);
    this.cacheEntries.push({ key, digest: next.digest!, size: next.size! });
    return next;
  }

  /**
   * Stores the image state `config` over `parent` (with `layer` on top of
   * its layers, if the step made one): its config and manifest blobs.
   */
  private async commit(parent: ImageState, run: ImageConfigFile["config"], history: HistoryEntry, layer?: { descriptor: LayerDescriptor; diffId: string }, author?: string): Promise<ImageState> {
    const created = new Date().toISOString();
    const base = parent.config;
    const config: ImageConfigFile = {
      architecture: base.architecture ?? "386",
      ...(base.variant ? { variant: base.variant } : {}),
      os: base.os ?? "linux",
      created,
      ...((author ?? base.author) ? { author: author ?? base.author } : {}),
      config: run,
      rootfs: { type: "layers", diff_ids: [...(base.rootfs?.diff_ids ?? []), ...(layer ? [layer.diffId] : [])] },
      history: [...(base.history ?? []), { created, ...history, ...(history.empty_layer ? { empty_layer: true } : {}) }],
    };
    if (!history.empty_layer) delete config.history!.at(-1)!.empty_layer;
    const configBytes = new TextEncoder().encode(JSON.stringify(config));
    const id = await this.store.writeBuildBlob(configBytes, this.held);
    const layers = layer ? [...parent.layers, layer.descriptor] : parent.layers;
    const manifest = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_MEDIA_TYPE, config: { mediaType: CONFIG_MEDIA_TYPE, digest: id, size: configBytes.length }, layers }));
    const digest = await this.store.writeBuildBlob(manifest, this.held);
    return { config, layers, id, digest, size: manifest.length };
  }

  /** A RUN step: its command in a container over the layers so far; its changes become a layer. */
  private async run(state: ImageState, step: Extract<Step, { kind: "RUN" }>, vars: StageVars): Promise<ImageState> {
    const shell = state.config.config?.Shell ?? DEFAULT_SHELL;
    const argv = commandArgv(step.command, shell);
    const { env, args } = runEnv(state.config, vars);
    const createdBy = runCreatedBy(argv, args);
    const key = await cacheKey(state.id ?? "scratch", { run: argv, args });
    const hit = await this.cached(key);
    if (hit) return hit;
    if (!state.layers.length) {
      throw buildFailed(`RUN on line ${step.line} of ${this.dockerfile.file}: the image has no files yet (FROM scratch), so there is nothing to run; COPY a program in first`, { line: step.line });
    }
    const remove = this.opts.remove ?? true;
    const c = await this.engine.create({
      image: state.id ?? "scratch",
      imageInfo: imageInfoOf(state),
      command: argv,
      entrypoint: [],
      env,
      workingDir: state.config.config?.WorkingDir || "/",
      user: state.config.config?.User || undefined,
      network: this.opts.network,
      labels: {},
    });
    const short = c.id.slice(0, 12);
    this.emit({ type: "running", container: short });
    let failed = true;
    const kill = () => void this.engine.kill(c.id, "KILL").catch(() => {});
    this.opts.signal?.addEventListener("abort", kill);
    try {
      // The client may have gone while the container was being made.
      this.checkAborted();
      const attachment = await this.engine.start(c.id, { attached: true });
      if (this.opts.signal?.aborted) kill();
      attachment.onOutput((stream, data) => this.emit({ type: "output", stream, data }));
      const code = await attachment.exited;
      this.checkAborted();
      if (code !== 0) {
        const container = this.engine.get(c.id);
        const why = container.startError ? `${container.startError}` : `The command '${argv.join(" ")}' returned a non-zero code: ${code}`;
        throw buildFailed(why, { exitCode: code, line: step.line });
      }
      const next = await this.commitRun(state, c.id, createdBy, remove);
      failed = false;
      this.cacheEntries.push({ key, digest: next.digest!, size: next.size! });
      return next;
    } finally {
      this.opts.signal?.removeEventListener("abort", kill);
      if ((!failed && remove) || (failed && this.opts.forceRemove) || this.opts.signal?.aborted) {
        await this.engine.remove(c.id, { force: true }).catch(() => {});
        if (!failed) this.emit({ type: "removed", container: short });
      }
    }
  }

  /** The layer of a RUN step's stopped container: tarred in the guest, converted and stored here; the guest keeps the folder as that layer. */
  private async commitRun(state: ImageState, container: string, createdBy: string, remove: boolean): Promise<ImageState> {
    const guest = this.engine.guest;
    const dirs = this.engine.containerDirs(container);
    const scratch = `${dirs.dir}/commit`;
    const r = await guest.exec(["/bin/sh", "-c", COMMIT_SCRIPT, "-", dirs.upper, dirs.rootfs, scratch]);
    if (r.exitCode !== 0) throw buildFailed(`could not take the step's changes: ${(r.stderr || r.stdout).trim() || `exit status ${r.exitCode}`}`);
    const upperTar = await guest.readFile(`${scratch}/layer.tar`);
    const tar = await ociLayerFromUpper(upperTar, opaqueFolders(r.stdout));
    const packed = await packLayer(tar);
    await this.store.writeBuildBlob(packed.blob, this.held);
    // The folder is the layer already: the guest keeps it (moved, not copied) unless the container stays.
    if (remove) await this.engine.adoptLayer(packed.digest, dirs.upper);
    return this.commit(state, structuredClone(state.config.config ?? {}), { created_by: createdBy }, { descriptor: { mediaType: GZIP_LAYER_MEDIA_TYPE, digest: packed.digest, size: packed.blob.length }, diffId: packed.diffId });
  }

  /** A COPY or ADD step: its sources from the context (or another stage or image), its layer made here. */
  private async copy(state: ImageState, step: Extract<Step, { kind: "COPY" | "ADD" }>, vars: StageVars): Promise<ImageState> {
    const what = step.kind;
    const v = stepVars(state.config, vars);
    const word = (w: string) => processWord(w, v, this.dockerfile.escape);
    const sources = step.sources.map(word);
    const dest = word(step.dest);
    const chown = step.chown !== undefined ? word(step.chown) : undefined;
    const fromName = step.from !== undefined ? word(step.from) : undefined;
    for (const s of sources) {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
        if (what === "ADD") throw new HyperlabError("NOT_SUPPORTED", `ADD ${s} (line ${step.line} of ${this.dockerfile.file}): hyperlab's builds reach no network, so ADD takes files of the build context only; download it into the context and COPY it`);
        throw buildFailed(`COPY failed: source can't be a URL for COPY: ${s}`);
      }
    }
    // Where the sources come from: the context, or the files of an earlier stage or of an image.
    const fromView = fromName !== undefined ? await this.fromSource(fromName, step) : undefined;
    const found: Array<{ source: string; entries: FileEntry[] }> = [];
    for (const s of sources) {
      const entries = fromView ? viewSources(fromView, s) : this.context.sources(s);
      if (!entries.length) {
        const where = fromView ? `${fromName}` : "build context or excluded by .dockerignore";
        throw buildFailed(`${what} failed: file not found in ${fromView ? `the files of ${where}` : where}: stat ${s}: file does not exist`, { line: step.line });
      }
      found.push({ source: s, entries });
    }
    // More than one thing to copy (several sources, or a wildcard matching several) needs a folder.
    const several = found.reduce((n, f) => n + f.entries.length, 0) > 1;
    const digests: string[] = [];
    for (const f of found) {
      for (const e of f.entries) {
        const children = e.type === "directory" ? (fromView ? fromView.under(e.path) : this.context.under(e.path)) : [];
        digests.push(`${e.type === "directory" ? "dir" : "file"}:${await contentDigest([e, ...children], e.path)}`);
      }
    }
    const workdir = state.config.config?.WorkingDir || "/";
    const key = await cacheKey(state.id ?? "scratch", { copy: what, digests, dest, workdir, chown, chmod: step.chmod, several, from: fromView ? fromName : undefined });
    const hit = await this.cached(key);
    if (hit) return hit;

    const view = await this.viewOf(state.layers);
    const owner = chown !== undefined ? chownIds(chown, view) : undefined;
    const destination = destinationOf(dest, workdir, view, several, what);
    const items: CopyItem[] = [];
    for (const f of found) {
      for (const e of f.entries) {
        if (e.type === "directory") {
          // A folder's contents go into the destination, not the folder itself.
          items.push({ kind: "folder", mode: e.mode, to: destination.path });
          const children = fromView ? fromView.under(e.path) : this.context.under(e.path);
          for (const child of children) {
            const rel = child.path.slice(e.path ? e.path.length + 1 : 0);
            items.push(child.type === "directory" ? { kind: "folder", mode: child.mode, to: joinPath(destination.path, rel) } : { kind: "entry", entry: this.fileOf(child, fromView), to: joinPath(destination.path, rel) });
          }
          continue;
        }
        const file = this.fileOf(e, fromView);
        const archive = what === "ADD" && !fromView ? await archiveEntries(file, f.source) : undefined;
        if (archive) {
          items.push({ kind: "folder", mode: 0o755, to: destination.path });
          for (const a of archive) items.push(a.type === "directory" ? { kind: "folder", mode: a.mode, to: joinPath(destination.path, a.path) } : { kind: "entry", entry: a, to: joinPath(destination.path, a.path) });
          continue;
        }
        const name = e.path.slice(e.path.lastIndexOf("/") + 1);
        items.push({ kind: "entry", entry: file, to: destination.isDir ? joinPath(destination.path, name) : destination.path });
      }
    }
    const chmod = step.chmod !== undefined ? parseInt(step.chmod, 8) : undefined;
    const entries = copyLayerEntries(view, items, { owner, chmod, workdir });
    const packed = await packLayer(await packEntries(entries));
    await this.store.writeBuildBlob(packed.blob, this.held);
    const kind = found.length > 1 || found[0]!.entries.length > 1 ? "multi" : found[0]!.entries[0]!.type === "directory" ? "dir" : "file";
    const sourceDigest = (await contentDigest(found.flatMap((f) => f.entries), "")).slice(0, 64);
    const createdBy = `${(state.config.config?.Shell ?? DEFAULT_SHELL).join(" ")} #(nop) ${what} ${kind}:${sourceDigest} in ${dest} `;
    const next = await this.commit(state, structuredClone(state.config.config ?? {}), { created_by: createdBy }, { descriptor: { mediaType: GZIP_LAYER_MEDIA_TYPE, digest: packed.digest, size: packed.blob.length }, diffId: packed.diffId });
    this.cacheEntries.push({ key, digest: next.digest!, size: next.size! });
    return next;
  }

  /** A source entry with its bytes (a symlink stays a link; a hard link is its target's file). */
  private fileOf(e: FileEntry, view: RootfsView | undefined): FileEntry {
    if (e.type !== "link") return e;
    const target = view ? view.get(cleanPath(e.linkname ?? "") ?? "") : this.context.resolve(e.path);
    return { ...e, type: "file", data: target?.data ?? new Uint8Array(), linkname: undefined };
  }

  /** COPY --from=NAME: an earlier stage (by name or number), else an image of the store. */
  private async fromSource(name: string, step: Step): Promise<RootfsView> {
    const byName = this.stages.find((s) => s.stage.name === name.toLowerCase());
    const byIndex = /^\d+$/.test(name) ? this.stages[Number(name)] : undefined;
    if (/^\d+$/.test(name) && !byIndex) throw new HyperlabError("INVALID_ARGUMENT", `${step.kind} --from=${name} (line ${step.line} of ${this.dockerfile.file}): there is no stage ${name} before it`);
    const stage = byName ?? byIndex;
    if (stage) return this.viewOf(stage.state.layers);
    const { image } = await this.store.ensure(name, (pull) => this.emit({ type: "pull", step: pull })).catch((err: unknown) => {
      throw err instanceof HyperlabError && err.code === "IMAGE_NOT_FOUND"
        ? new HyperlabError("IMAGE_NOT_FOUND", `${step.kind} --from=${name} (line ${step.line} of ${this.dockerfile.file}): no stage or image named ${name}: ${err.message}`)
        : err;
    });
    return this.viewOf(await this.store.layerDescriptors(image.digest));
  }

  /** The files of `layers` (read from the store once per build). */
  private viewOf(layers: LayerDescriptor[]): Promise<RootfsView> {
    const id = layers.map((l) => l.digest).join(",");
    let view = this.views.get(id);
    if (!view) {
      view = (async () => RootfsView.fromLayers(await Promise.all(layers.map(async (l) => layerTar(await this.store.blob(l.digest))))))();
      this.views.set(id, view);
      view.catch(() => this.views.delete(id));
    }
    return view;
  }
}

/** An image state as the engine runs it (a build step's image has no name). */
function imageInfoOf(state: ImageState): ImageInfo {
  const layers = state.layers.map((l) => ({ digest: l.digest, size: l.size }));
  return {
    reference: state.id ? shortId(state.id) : "scratch",
    repository: "<none>",
    tag: "<none>",
    digest: state.digest ?? "",
    id: state.id ?? "",
    size: layers.reduce((n, l) => n + l.size, 0),
    layers,
    created: state.config.created,
    config: state.config.config ?? {},
  };
}

function stateOf(b: BuiltState): ImageState {
  return { config: b.config, layers: b.layers, id: b.id, digest: b.digest, size: b.size };
}

/** The entries a COPY --from source means in an image's files: the path (symlinks followed) or a wildcard's matches. */
function viewSources(view: RootfsView, source: string): FileEntry[] {
  const path = cleanPath(source.replace(/^\/+/, ""));
  if (path === null) return [];
  if (!hasWildcards(path)) {
    const resolved = view.resolve(path);
    const e = view.get(resolved);
    return e ? [{ ...e, path: resolved }] : [];
  }
  const re = matchRegExp(path);
  return view.under("").filter((e) => re.test(e.path));
}

/** --chown's user[:group] as numbers: numeric, or names looked up in the image's /etc/passwd and /etc/group (a user alone: its uid for both). */
function chownIds(spec: string, view: RootfsView): Owner {
  const [user, group] = spec.split(":");
  const passwd = view.text("etc/passwd");
  const groupFile = view.text("etc/group");
  const id = (name: string, kind: "user" | "group"): number => {
    if (/^\d+$/.test(name)) return Number(name);
    try {
      const u = resolveUser(kind === "user" ? name : `0:${name}`, { passwd, group: groupFile });
      return kind === "user" ? u.uid : u.gid;
    } catch {
      throw buildFailed(`unable to convert uid/gid chown string to host mapping: can't find ${kind === "user" ? "uid for user" : "gid for group"} ${name}: no such ${kind}: ${name}`);
    }
  };
  if (!user) throw new HyperlabError("INVALID_ARGUMENT", `invalid --chown '${spec}': give user[:group]`);
  const uid = id(user, "user");
  return { uid, gid: group !== undefined && group !== "" ? id(group, "group") : uid };
}

/**
 * ADD's local archives: the entries of a tar (plain or gzip) file source,
 * to unpack at the destination; undefined when it is not an archive (it is
 * copied as it is). bzip2 and xz are refused (hyperlab unpacks tar and gzip).
 */
async function archiveEntries(file: FileEntry, source: string): Promise<FileEntry[] | undefined> {
  const data = file.data;
  if (!data || file.type !== "file") return undefined;
  const bzip2 = data[0] === 0x42 && data[1] === 0x5a && data[2] === 0x68;
  const xz = data[0] === 0xfd && data[1] === 0x37 && data[2] === 0x7a && data[3] === 0x58 && data[4] === 0x5a;
  if (bzip2 || xz) throw new HyperlabError("NOT_SUPPORTED", `ADD ${source}: the archive is ${bzip2 ? "bzip2" : "xz"}-compressed, which hyperlab's builder does not unpack: give a .tar or .tar.gz, or COPY it and unpack it in a RUN step`);
  let tar = data;
  if (data[0] === 0x1f && data[1] === 0x8b) {
    try {
      tar = await layerTar(data);
    } catch {
      return undefined;
    }
  }
  const magic = new TextDecoder().decode(tar.subarray(257, 262));
  if (magic !== "ustar") return undefined;
  const out: FileEntry[] = [];
  for (const { header: h, data: body } of await decodeTar(tar, `ADD ${source}`)) {
    const path = cleanPath(h.name);
    if (path === null) throw buildFailed(`ADD ${source}: the archive has the path '${h.name}', which leaves its destination`);
    if (!path) continue;
    const base = path.slice(path.lastIndexOf("/") + 1);
    if (base.startsWith(".wh.")) throw buildFailed(`ADD ${source}: the archive has '${path}', a name that means a deletion in an image layer; rename it`);
    const type = h.type === "directory" || h.type === "symlink" ? h.type : h.type === "link" ? "link" : h.type === "file" || h.type === undefined ? "file" : undefined;
    if (!type) continue;
    out.push({ path, type, mode: (h.mode ?? 0o644) & 0o7777, uid: h.uid ?? 0, gid: h.gid ?? 0, mtime: h.mtime ?? new Date(0), data: type === "file" ? body : undefined, linkname: h.linkname });
  }
  // A hard link in the archive is its target's bytes in the layer.
  const byPath = new Map(out.map((e) => [e.path, e]));
  return out.map((e) => (e.type === "link" ? { ...e, type: "file" as const, data: byPath.get(cleanPath(e.linkname ?? "") ?? "")?.data ?? new Uint8Array(), linkname: undefined } : e));
}

