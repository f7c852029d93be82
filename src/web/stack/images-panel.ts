// The images part of the Containers layer: the page has no images until a
// container uses one; then it pulls it from the site's registry (v2/ beside
// the page, page-images.ts) as `docker pull` does. Each pull is shown as it
// goes: its layers, their bytes, and whether each came over the network,
// from the browser's cache, or was in the page already.
import type { ImagePull, LayerPull } from "../page-images.ts";
import { el } from "./dom.ts";
import { seconds } from "./text.ts";

/** Bytes in kB or MB (decimal, as a download bar says). */
function size(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(bytes / 1e3, 0.1).toFixed(1)} kB`;
}

/** Where a layer is, or where its bytes came from, in words. */
function layerText(l: LayerPull): string {
  switch (l.source) {
    case "page":
      return "in the page already (not fetched)";
    case "browser-cache":
      return "from the browser's cache (0 B on the wire)";
    case "network":
      return l.transferred ? `downloaded: ${size(l.transferred)} on the wire` : "downloaded";
  }
  if (l.status === "Downloading" && l.size) return `downloading ${size(l.current)} of ${size(l.size)}`;
  return l.status ? l.status.toLowerCase() : "waiting";
}

/** A pull's one-line summary: how many layers came from where, and the bytes. */
function summary(p: ImagePull): string {
  if (p.state === "failed") return `failed after ${seconds(p.ms ?? 0)}`;
  const by = (s: LayerPull["source"]) => p.layers.filter((l) => l.source === s);
  if (p.state === "pulling") {
    const done = p.layers.filter((l) => l.source || l.status === "Download complete" || l.status === "Pull complete").length;
    return `pulling… ${done} of ${p.layers.length || "?"} layers`;
  }
  if (p.upToDate) return `up to date (had it already) · ${seconds(p.ms ?? 0)}`;
  const net = by("network");
  const wire = net.reduce((n, l) => n + (l.transferred ?? 0), 0);
  const parts = [
    net.length ? `${net.length} downloaded (${size(wire)} on the wire)` : "",
    by("browser-cache").length ? `${by("browser-cache").length} from the browser's cache` : "",
    by("page").length ? `${by("page").length} in the page already` : "",
  ].filter(Boolean);
  return `pulled in ${seconds(p.ms ?? 0)}: ${parts.join(", ") || "no layers"}`;
}

/** The page's pulls, newest first, drawn into `parent`. */
export class ImagesPanel {
  private readonly box = el("div", { className: "images" });

  constructor(parent: HTMLElement) {
    parent.append(this.box);
  }

  /** Shows `pulls` (oldest first, as SiteImages keeps them) from the registry at `registryUrl`. */
  draw(pulls: readonly ImagePull[], registryUrl: string): void {
    const head = el("p", { className: "muted" });
    head.textContent = pulls.length
      ? `Images are pulled from this site's registry (${registryUrl}v2/) the first time a container uses them, and kept for this page's session.`
      : `No images in the page yet: the first container of an image pulls it from this site's registry (${registryUrl}v2/), layer by layer.`;
    const items = [...pulls].reverse().map((p) => {
      const item = el("div", { className: "item image-pull" });
      item.dataset.image = p.name;
      item.dataset.state = p.state;
      const state = p.state === "done" ? "pulled" : p.state;
      item.append(
        el("div", { className: "head" }, el("strong", { text: p.name }), el("span", { className: "muted summary", text: summary(p) }), el("span", { className: `state ${p.state === "failed" ? "exited" : p.state === "done" ? "running" : ""}`, text: state })),
      );
      if (p.error) item.append(el("p", { className: "status error", text: p.error }));
      if (p.layers.length) {
        const table = el("table", { className: "layers" });
        table.append(el("tr", {}, el("th", { text: "layer" }), el("th", { text: "size" }), el("th", { text: "bytes from" })));
        for (const l of p.layers) {
          const tr = el("tr", {}, el("td", { className: "mono", text: l.id }), el("td", { text: l.size ? size(l.size) : "—" }), el("td", { text: layerText(l) }));
          tr.dataset.layer = l.id;
          if (l.source) tr.dataset.source = l.source;
          table.append(tr);
        }
        item.append(table);
      }
      if (p.digest) item.append(el("p", { className: "muted mono digest", text: p.digest }));
      return item;
    });
    this.box.replaceChildren(el("h4", { text: "Images" }), head, ...items);
  }
}
