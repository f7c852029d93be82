// Writes dist/manifest.json: every Debian package used (with version), the
// kernel release and config, the sha256 and size of every output, and the
// container images in dist/images/ (an OCI image layout) with their layers.
// Deterministic: no timestamps, sorted keys.
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL(".", import.meta.url).pathname;
const dist = join(root, "dist");
const cache = process.env.HYPERLAB_IMAGE_CACHE ?? join(root, ".cache");
const previous = existsSync(join(dist, "manifest.json")) ? JSON.parse(readFileSync(join(dist, "manifest.json"), "utf8")) : {};

const outputs = {
  "bios.bin": "SeaBIOS, the PC BIOS (optional: used only with firmware \"seabios\")",
  "vgabios-stdvga.bin": "SeaBIOS VGA BIOS for the standard VGA adapter",
  "loader.elf": "hyperlab's loader: starts Linux straight from multiboot, no firmware",
  "bzImage": "Linux 6.1 i386 kernel, LZ4-compressed (booted by SeaBIOS; its setup header also serves the loader)",
  "vmlinux.bin": "the same kernel uncompressed, as raw bytes from its load address (booted by the loader)",
  "kernel.config": "the full kernel configuration the bzImage was built with",
  "base.cpio": "initramfs layer 1: busybox and the directory skeleton",
  "runtimes.cpio": "initramfs layer 2: crun, runc and their shared libraries (libsystemd: hyperlab's stand-in)",
  "hyperlab.cpio": "initramfs layer 3: hyperlab's own files (/init, the agent, inittab, profile)",
};

// Guest profiles (profiles/NAME/build.sh): the default guest plus layers of
// their own. Not in `files`, so a new profile does not change the default
// image's id (and its boot snapshots); each profile's id covers the default's
// and its own layers. `minimumMemoryMiB`: what the profile needs to boot and
// run its daemons; `ready`: a command the host runs in the guest until it
// exits 0 before taking the profile's boot snapshot (null: the agent's answer
// is enough).
const profileTable = {
  lxc: {
    what: "LXC 5.0 (lxc-create with the busybox template, lxc-start, lxc-attach, lxc-ls, lxc-info, lxc-stop, lxc-destroy, lxc-cgroup, lxc-execute), containers on the bridge lxcbr0",
    layers: { "profile-lxc.cpio": "initramfs layer 4 (lxc profile): its inittab and boot steps, and LXC 5.0 as an xz payload the guest unpacks at boot" },
    minimumMemoryMiB: 96,
    ready: null,
  },
  podman: {
    what: "Podman 4.3 as root, daemonless (podman run, ps, logs, exec, stop, rm, images, build; conmon beside each container, crun its runtime, netavark and aardvark-dns its networking), with the engine's busybox image in its store",
    layers: { "profile-podman.cpio": "initramfs layer 4 (podman profile): its inittab and boot steps, and Podman 4.3 with conmon, netavark, aardvark-dns, catatonit and iptables as an xz payload the guest unpacks at boot" },
    minimumMemoryMiB: 256,
    ready: null,
  },
};

const steps = {};
for (const step of ["firmware", "kernel", "loader", "rootfs", "images", "tools", ...Object.keys(profileTable).map((p) => `profile-${p}`)]) {
  const file = join(cache, `packages-${step}.txt`);
  if (!existsSync(file)) {
    // A step not run this time keeps what the last manifest said of it (a profile's list is kept under its profile).
    steps[step] = (step.startsWith("profile-") ? previous.profiles?.[step.slice("profile-".length)]?.packages : previous.packages?.[step]) ?? [];
    continue;
  }
  const lines = [...new Set(readFileSync(file, "utf8").split("\n").filter(Boolean))].sort();
  steps[step] = lines.map((line) => {
    const [name, version, arch] = line.split(" ");
    return { name, version, arch };
  });
}

const files = {};
for (const [name, what] of Object.entries(outputs)) {
  const path = join(dist, name);
  if (!existsSync(path)) throw new Error(`dist/${name} is missing: run the step that builds it (npm run images)`);
  const data = readFileSync(path);
  files[name] = { sha256: createHash("sha256").update(data).digest("hex"), size: data.length, what };
}
// The OCI layout: every image named in index.json, its manifest and layers.
// Each blob is checked against its digest, so a stale or partial layout fails here.
const sha256 = (data) => createHash("sha256").update(data).digest("hex");
function readBlob({ digest, size }) {
  const path = join(dist, "images", "blobs", "sha256", digest.replace(/^sha256:/, ""));
  if (!existsSync(path)) throw new Error(`dist/images has no blob ${digest}: run images/build.sh`);
  const data = readFileSync(path);
  if (data.length !== size || `sha256:${sha256(data)}` !== digest) throw new Error(`dist/images blob ${digest} does not match its digest or size: run images/build.sh`);
  return data;
}
const indexPath = join(dist, "images", "index.json");
if (!existsSync(indexPath)) throw new Error("dist/images/index.json is missing: run the step that builds it (npm run images -- images)");
const indexData = readFileSync(indexPath);
const images = {
  layout: "images",
  index: { sha256: sha256(indexData), size: indexData.length },
  images: JSON.parse(indexData).manifests.map((desc) => {
    const manifest = JSON.parse(readBlob(desc));
    const config = JSON.parse(readBlob(manifest.config));
    const history = (config.history ?? []).filter((h) => !h.empty_layer);
    return {
      reference: desc.annotations["org.opencontainers.image.ref.name"],
      platform: `${desc.platform.os}/${desc.platform.architecture}`,
      manifest: desc.digest,
      config: manifest.config.digest,
      cmd: config.config?.Cmd ?? [],
      layers: manifest.layers.map((layer, i) => {
        readBlob(layer);
        return { digest: layer.digest, size: layer.size, what: history[i]?.comment ?? "" };
      }),
    };
  }),
};

// Tools a guest loads on first use (tools/build.sh): not in `files`, so they
// are not part of the image's id (a new docker client does not invalidate
// boot snapshots), and nothing at boot reads them.
const toolTable = {
  docker: {
    file: "tools/docker.gz",
    path: "/usr/libexec/hyperlab/docker",
    package: "docker.io",
    what: "the docker CLI (docker.io's /usr/bin/docker, the client alone), gzip-compressed; installed in a guest on its first 'docker'",
  },
  "docker-init": {
    file: "tools/docker-init.gz",
    path: "/usr/libexec/hyperlab/docker-init",
    package: "tini",
    what: "tini's static build (tini-static), what Docker ships as docker-init: PID 1 of a container started with --init, which forwards signals and reaps orphans; installed in a guest on the first --init",
  },
};
const tools = {};
for (const [name, t] of Object.entries(toolTable)) {
  const path = join(dist, t.file);
  if (!existsSync(path)) throw new Error(`dist/${t.file} is missing: run the step that builds it (npm run images -- tools)`);
  const data = readFileSync(path);
  const unpacked = gunzipSync(data);
  const pkg = steps.tools.find((p) => p.name === t.package);
  if (!pkg) throw new Error(`the tools step recorded no package ${t.package}: run npm run images -- tools`);
  tools[name] = {
    file: t.file,
    sha256: sha256(data),
    size: data.length,
    unpacked: { sha256: sha256(unpacked), size: unpacked.length },
    path: t.path,
    package: pkg,
    license: `licenses/${t.package}.copyright`,
    what: t.what,
  };
}

const profiles = {};
for (const [name, p] of Object.entries(profileTable)) {
  const layers = {};
  for (const [file, what] of Object.entries(p.layers)) {
    const path = join(dist, file);
    if (!existsSync(path)) throw new Error(`dist/${file} is missing: run the step that builds it (npm run images -- profiles)`);
    const data = readFileSync(path);
    layers[file] = { sha256: sha256(data), size: data.length, what };
  }
  const payloadFile = join(cache, `profile-${name}.json`);
  const payload = existsSync(payloadFile) ? JSON.parse(readFileSync(payloadFile, "utf8")) : previous.profiles?.[name]?.payload;
  profiles[name] = {
    what: p.what,
    initrd: Object.keys(layers),
    files: layers,
    minimumMemoryMiB: p.minimumMemoryMiB,
    ready: p.ready,
    payload,
    packages: steps[`profile-${name}`],
  };
}

const licenses = readdirSync(join(dist, "licenses")).sort();
const release = existsSync(join(cache, "kernel", "release"))
  ? readFileSync(join(cache, "kernel", "release"), "utf8").trim()
  : previous.kernel?.release;
const layout = existsSync(join(cache, "kernel", "layout.json"))
  ? JSON.parse(readFileSync(join(cache, "kernel", "layout.json"), "utf8"))
  : { load: previous.kernel?.load, entry: previous.kernel?.entry, end: previous.kernel?.end };
const id = createHash("sha256").update(JSON.stringify(files)).digest("hex").slice(0, 16);

const manifest = {
  format: 1,
  id,
  distribution: "Debian bookworm (i386 packages), linux-source-6.1",
  kernel: { release, arch: "i386", config: "kernel.config", fragment: "guest-images/kernel/hyperlab.config", ...layout },
  initrd: ["base.cpio", "runtimes.cpio", "hyperlab.cpio"],
  files,
  images,
  tools,
  profiles,
  packages: Object.fromEntries(Object.entries(steps).filter(([step]) => !step.startsWith("profile-"))),
  licenses,
};
writeFileSync(join(dist, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`manifest.json  id ${id}`);
