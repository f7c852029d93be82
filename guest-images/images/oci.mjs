// Writes an OCI image layout (image-layout 1.0: oci-layout, index.json,
// blobs/sha256/<hex>) from uncompressed layer tars and a description of the
// images, read as JSON on stdin:
//   { "created": "2026-01-01T00:00:00Z",
//     "images": [ { "ref": "lua:5.4", "cmd": ["lua"],
//                   "layers": [ { "file": "/path/busybox.tar", "comment": "..." }, ... ] } ] }
// Usage: node oci.mjs OUTDIR < images.json
// Deterministic: the JSON is built with fixed key order and no varying time,
// so the same tars give the same digests. A layer used by several images is
// one blob. Prints one line per image: reference, manifest digest, layers.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  // Uncompressed on purpose: the guest's busybox tar unpacks them, and
  // decompressing would cost emulated CPU.
  layer: "application/vnd.oci.image.layer.v1.tar",
};
const PLATFORM = { architecture: "386", os: "linux" };
const ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];

const out = process.argv[2];
if (!out) throw new Error("usage: node oci.mjs OUTDIR < images.json");
const spec = JSON.parse(readFileSync(0, "utf8"));

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "blobs", "sha256"), { recursive: true });

/** Stores bytes as a blob and returns its descriptor. */
function blob(mediaType, data) {
  const hex = createHash("sha256").update(data).digest("hex");
  writeFileSync(join(out, "blobs", "sha256", hex), data);
  return { mediaType, digest: `sha256:${hex}`, size: data.length };
}
const json = (value) => Buffer.from(JSON.stringify(value));

const layers = new Map(); // tar path -> descriptor, so a shared layer is hashed and written once
const entries = [];
for (const image of spec.images) {
  const descs = image.layers.map(({ file }) => {
    if (!layers.has(file)) layers.set(file, blob(MEDIA.layer, readFileSync(file)));
    return layers.get(file);
  });
  const config = blob(MEDIA.config, json({
    created: spec.created,
    architecture: PLATFORM.architecture,
    os: PLATFORM.os,
    config: { Env: ENV, Cmd: image.cmd },
    // Uncompressed layers: each diff_id is the layer's own digest.
    rootfs: { type: "layers", diff_ids: descs.map((d) => d.digest) },
    history: image.layers.map(({ comment }) => ({ created: spec.created, created_by: "guest-images/images/build.sh", comment })),
  }));
  const manifest = blob(MEDIA.manifest, json({ schemaVersion: 2, mediaType: MEDIA.manifest, config, layers: descs }));
  entries.push({
    ...manifest,
    platform: PLATFORM,
    annotations: { "io.hyperlab.image.name": image.ref, "org.opencontainers.image.ref.name": image.ref },
  });
  console.log(`${image.ref.padEnd(16)} ${manifest.digest}  layers ${descs.map((d) => `${d.digest.slice(7, 19)} (${d.size})`).join(" ")}`);
}

writeFileSync(join(out, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }) + "\n");
writeFileSync(join(out, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: entries }, null, 2) + "\n");
