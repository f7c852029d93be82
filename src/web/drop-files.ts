// Files dropped onto a VM's terminal go into its guest: a page has no host
// directories to bind-mount, so this is how a learner's own files get in.
// They land in root's home (/root, where the console's shell starts), or in
// a named volume (a folder of the guest that containers mount with
// `-v NAME:/path`). Folders keep their tree. The bytes go through the VM's
// agent (a file write each); nothing leaves the browser.
import { HyperlabError } from "../errors.ts";
import { vmAgent } from "../containers/vm-agent.ts";
import { guestVolumes } from "../containers/volumes.ts";
import type { Vm } from "../hypervisor/vm.ts";

/** One dropped file: its path below the drop (a folder's tree kept) and its contents. */
export interface DroppedFile {
  path: string;
  file: File;
}

/** Where dropped files go: root's home, or a volume's folder (made if it does not exist). */
export type DropTarget = { kind: "home" } | { kind: "volume"; name: string };

/** What a drop copied. */
export interface DropReport {
  /** the guest folder they went to */
  dir: string;
  files: number;
  bytes: number;
}

/** The home folder dropped files go to by default. */
export const DROP_HOME = "/root";
/** The most bytes one drop copies (the guest's memory holds them). */
export const MAX_DROP_BYTES = 256 * 1024 * 1024;

/** Every file of a drop, folders walked (where the browser lets a folder be read); files alone otherwise. */
export async function droppedFiles(dt: DataTransfer): Promise<DroppedFile[]> {
  const entries = [...dt.items].map((i) => (i.kind === "file" ? i.webkitGetAsEntry() : null)).filter((e): e is FileSystemEntry => e !== null);
  if (!entries.length) return [...dt.files].map((file) => ({ path: file.name, file }));
  const out: DroppedFile[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isFile) {
      out.push({ path, file: await new Promise<File>((ok, err) => (entry as FileSystemFileEntry).file(ok, err)) });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries answers in batches until an empty one.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((ok, err) => reader.readEntries(ok, err));
        if (!batch.length) break;
        for (const child of batch) await walk(child, path);
      }
    }
  };
  for (const e of entries) await walk(e, "");
  return out;
}

/** A dropped path as a safe relative path (no '..', no leading '/'). */
function safePath(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== "." && p !== "..");
  if (!parts.length) throw new HyperlabError("INVALID_ARGUMENT", `'${path}' is not a file name`);
  return parts.join("/");
}

/**
 * Copies dropped files into `vm`'s guest at `target`. Legal while the VM
 * runs; refuses a drop over MAX_DROP_BYTES before copying anything.
 */
export async function copyIntoGuest(vm: Vm, files: readonly DroppedFile[], target: DropTarget): Promise<DropReport> {
  const bytes = files.reduce((n, f) => n + f.file.size, 0);
  if (bytes > MAX_DROP_BYTES) {
    throw new HyperlabError("INVALID_ARGUMENT", `the drop holds ${Math.round(bytes / 2 ** 20)} MiB; at most ${MAX_DROP_BYTES / 2 ** 20} MiB go into the guest at once`);
  }
  const dir = target.kind === "home" ? DROP_HOME : (await guestVolumes(vmAgent(vm)).create({ name: target.name })).mountpoint;
  for (const f of files) await vm.writeFile(`${dir}/${safePath(f.path)}`, new Uint8Array(await f.file.arrayBuffer()));
  return { dir, files: files.length, bytes };
}

/** The volumes of `vm`'s guest, by name (for the drop target's list). */
export async function volumeNames(vm: Vm): Promise<string[]> {
  return (await guestVolumes(vmAgent(vm)).list()).map((v) => v.name);
}
