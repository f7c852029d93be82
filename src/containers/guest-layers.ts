// Image layers in the guest, as overlayfs uses them: a layer is a folder
// that is one lowerdir of a container's overlay, where a deletion is a
// character device 0/0 (a whiteout) and a folder that hides everything
// below it carries the xattr trusted.overlay.opaque=y. OCI layer tars say
// the same with `.wh.NAME` files and `.wh..wh..opq`. The guest has only
// busybox, whose tar keeps devices but no xattrs and which has no
// getfattr/setfattr, so both directions go through overlayfs itself:
// - out (a RUN step's upper folder → layer): a probe overlay with the upper
//   folder over a tree holding a marker in every folder shows which
//   folders are opaque (their marker is hidden);
// - in (a layer tar → folder): `.wh.NAME` becomes `mknod NAME c 0 0`; an
//   opaque folder is made by overlayfs (rmdir and mkdir of a lower folder in
//   a scratch overlay leave an opaque folder in its upper), then moved into
//   place. xattrs need tmpfs (the guest's / is ramfs, without them), so a
//   layer with opaque folders, and every layer a build commits, lives in
//   /run (tmpfs), linked from the layer folder.
// The scripts run with busybox sh; paths are passed as arguments.
import { createTarDecoder } from "modern-tar";

/** Where layers with overlay xattrs live in the guest (tmpfs), linked from the engine's layer folder. */
export const XATTR_LAYER_DIR = "/run/hyperlab/layers";

/** The name of the probe's marker files (see the file comment). */
const PROBE = ".hyperlab-opaque-probe";

/**
 * Makes the tar of a stopped container's upper folder ($1) after unmounting
 * its root ($2), in the scratch folder $3 ($3/layer.tar); prints the opaque
 * folders (one a line, "./path"). Fails (exit 3) on a device file that is
 * not a whiteout.
 */
export const COMMIT_SCRIPT = `set -e
UP=$1; ROOT=$2; T=$3
umount "$ROOT" 2>/dev/null || true
mkdir -p "$T"
cd "$UP"
bad=$(find . -type c -exec stat -c '%t:%T %n' {} + | grep -v '^0:0 ' || true)
if [ -n "$bad" ]; then echo "the step made device files, which image layers cannot carry: $bad" >&2; exit 3; fi
if [ -n "$(find . -mindepth 1 -type d | head -n 1)" ]; then
  mkdir -p "$T/probe" "$T/merged"
  find . -mindepth 1 -type d -exec sh -c 'cd "$0" && mkdir -p "$@" && for d; do : > "$d/${PROBE}"; done' "$T/probe" {} +
  mount -t overlay overlay -o "lowerdir=$UP:$T/probe" "$T/merged"
  (cd "$T/merged" && find . -mindepth 1 -type d -exec sh -c 'for d; do [ -e "$d/${PROBE}" ] || printf "%s\\n" "$d"; done' sh {} +) || { umount "$T/merged"; exit 1; }
  umount "$T/merged"
fi
tar -cf "$T/layer.tar" .
`;

/**
 * The opaque folders the commit script printed, without those inside
 * another opaque folder (the probe cannot see below an opaque folder, and
 * the outer one hides everything below it anyway).
 */
export function opaqueFolders(output: string): string[] {
  const dirs = output
    .split("\n")
    .map((l) => l.trim().replace(/^\.\//, ""))
    .filter(Boolean)
    .sort();
  return dirs.filter((d) => !dirs.some((o) => o !== d && d.startsWith(`${o}/`)));
}

/**
 * Turns the OCI whiteouts of a layer unpacked in $1 into overlay ones, with
 * $2 as a scratch folder on the same tmpfs: each argument after them is
 * "w:PATH" (a `.wh.NAME` file) or "o:PATH" (a folder holding `.wh..wh..opq`).
 */
export const WHITEOUT_SCRIPT = `set -e
L=$1; T=$2; shift 2
for a; do
  case "$a" in
  w:*) w=\${a#w:}; d=\${w%/*}; [ "$d" = "$w" ] && d=.; b=\${w##*/}; rm -f "$L/$w"; mknod "$L/$d/\${b#.wh.}" c 0 0 ;;
  o:*) p=\${a#o:}; rm -f "$L/$p/.wh..wh..opq"
    rm -rf "$T/o"; mkdir -p "$T/o/low/x" "$T/o/up" "$T/o/work" "$T/o/m"
    mount -t overlay overlay -o "lowerdir=$T/o/low,upperdir=$T/o/up,workdir=$T/o/work" "$T/o/m"
    rmdir "$T/o/m/x"; mkdir "$T/o/m/x"; umount "$T/o/m"
    n="$L/$p.hyperlab-opaque"; mv "$T/o/up/x" "$n"
    s=$(stat -c '%a %u:%g' "$L/$p"); chmod "\${s% *}" "$n"; chown "\${s#* }" "$n"
    find "$L/$p" -mindepth 1 -maxdepth 1 -exec sh -c 'mv "$@" "$0"' "$n" {} +
    rmdir "$L/$p"; mv "$n" "$L/$p" ;;
  esac
done
rm -rf "$T"
`;

/**
 * The whiteouts of an OCI layer tar's entry names, as WHITEOUT_SCRIPT's
 * arguments: "w:PATH" for `.wh.NAME`, "o:FOLDER" for `.wh..wh..opq`.
 */
export function whiteoutArgs(names: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of names) {
    const name = raw.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
    const slash = name.lastIndexOf("/");
    const base = name.slice(slash + 1);
    // The root cannot be opaque: an opaque marker there has nothing to hide that a layer could not.
    if (base === ".wh..wh..opq") {
      if (slash > 0) out.push(`o:${name.slice(0, slash)}`);
    } else if (base.startsWith(".wh.")) out.push(`w:${name}`);
  }
  // Plain whiteouts first: an opaque folder's own entries move with it.
  return [...out.filter((a) => a.startsWith("w:")), ...out.filter((a) => a.startsWith("o:"))];
}

const WH = new TextEncoder().encode(".wh.");

/** Whether `tar` may hold whiteouts (its bytes contain ".wh."): a quick test before reading its entries. */
export function mayHaveWhiteouts(tar: Uint8Array): boolean {
  outer: for (let i = tar.indexOf(WH[0]!); i >= 0 && i <= tar.length - WH.length; i = tar.indexOf(WH[0]!, i + 1)) {
    for (let j = 1; j < WH.length; j++) if (tar[i + j] !== WH[j]) continue outer;
    return true;
  }
  return false;
}

/** The entry names of a tar, in order. */
export async function tarNames(tar: Uint8Array): Promise<string[]> {
  const names: string[] = [];
  const decoder = createTarDecoder();
  const writer = decoder.writable.getWriter();
  const feeding = writer.write(tar).then(() => writer.close());
  feeding.catch(() => {});
  const reader = decoder.readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    names.push(value.header.name);
    await value.body.cancel();
  }
  await feeding;
  return names;
}
