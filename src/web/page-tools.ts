// Guest tools on the page: programs a guest loads on first use (the docker
// client, 14.6 MB packed, 43.6 MB unpacked) are files of the site that no
// start downloads. The first time a guest of the page asks for one, it is
// fetched from the site with its bytes counted (the element's progress bar
// and the stack view show them), checked against the guest's manifest and
// unpacked; the packed file is kept for the page's other VMs. The page
// loads this module on the first tool a guest asks for (page-docker.ts).
import { HyperlabError } from "../errors.ts";
import { loadGuestTool } from "../hardware/guest-tools.ts";
import type { ToolLoader } from "../guest/guest-tools.ts";
import { guestAssetUrl, guestToolUrl } from "./assets.ts";
import { MISSING_ASSET_ADVICE } from "./page-host.ts";

/** One tool's download from the site, as the page shows it. */
export interface ToolDownload {
  name: string;
  loadedBytes: number;
  /** the packed size the manifest gives (0 until the manifest is read) */
  totalBytes: number;
  done: boolean;
  error?: string;
}

/** The page's guest tools: each fetched once, then unpacked for each guest that asks. */
class PageTools {
  private readonly files = new Map<string, Promise<Uint8Array>>();
  private readonly downloads = new Map<string, ToolDownload>();
  private readonly listeners = new Set<(name: string) => void>();

  /** The program of tool `name`, unpacked and checked (a ToolLoader). Legal any time. */
  readonly load: ToolLoader = async (name) => {
    const where = `this site (${new URL("./", guestAssetUrl("manifest.json") ?? import.meta.url).href})`;
    const read = async (file: string): Promise<Uint8Array> => {
      if (file === "manifest.json") return this.manifest();
      let packed = this.files.get(file);
      if (!packed) {
        packed = this.fetchTool(name, file);
        this.files.set(file, packed);
        packed.catch(() => this.files.delete(file));
      }
      return packed;
    };
    try {
      return (await loadGuestTool(read, where, name)).data;
    } catch (err) {
      // The image loader's advice is for a checkout; on a page the visitor reloads or the site is rebuilt.
      if (err instanceof HyperlabError && err.code.startsWith("IMAGE_")) throw new HyperlabError(err.code, `${err.message.replace(/[;.] (restore|rebuild) it with .*$/s, "")}. ${MISSING_ASSET_ADVICE}`, err.detail);
      throw err;
    }
  };

  /** How the download of tool `name` is going (undefined before its first use). */
  download(name: string): ToolDownload | undefined {
    return this.downloads.get(name);
  }

  /** Calls `listener` with a tool's name after each change of its download. Returns the unsubscribe. */
  onChange(listener: (name: string) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  private async manifest(): Promise<Uint8Array> {
    const url = guestAssetUrl("manifest.json");
    if (!url) throw new Error("the site was built without manifest.json");
    // The page read it at start; a hashed file, so the browser's cache answers.
    return new Uint8Array(await (await fetchOk(url)).arrayBuffer());
  }

  private async fetchTool(name: string, file: string): Promise<Uint8Array> {
    const progress: ToolDownload = { name, loadedBytes: 0, totalBytes: 0, done: false };
    this.downloads.set(name, progress);
    const changed = () => {
      for (const l of this.listeners) l(name);
    };
    try {
      const url = guestToolUrl(file);
      if (!url) throw new Error(`the site was built without ${file}`);
      const tools = (JSON.parse(new TextDecoder().decode(await this.manifest())) as { tools?: Record<string, { size: number }> }).tools;
      progress.totalBytes = tools?.[name]?.size ?? 0;
      changed();
      const response = await fetchOk(url);
      const reader = response.body!.getReader();
      const chunks: Uint8Array[] = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        progress.loadedBytes += value.length;
        changed();
      }
      const out = new Uint8Array(progress.loadedBytes);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      progress.done = true;
      changed();
      return out;
    } catch (err) {
      progress.error = (err as Error).message;
      changed();
      throw err;
    }
  }
}

async function fetchOk(url: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error(`the network request for ${url} failed (${(err as Error).message})`);
  }
  if (!response.ok || !response.body) throw new Error(`the server answered ${url} with HTTP ${response.status}`);
  return response;
}

/** The page's guest tools (one set per page). */
export const pageTools = new PageTools();
