// Output formatting shared by the container verbs: Docker's tables and units.

/** Docker-style size: 1.2MB, 640kB, 12B (decimal units, as `docker images`). */
export function humanSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB"];
  let v = bytes;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)}${units[u]}`;
}

/** "3 seconds ago", "About a minute ago", "2 hours ago". */
export function ago(date: Date, now = new Date()): string {
  const s = Math.max(0, Math.round((+now - +date) / 1000));
  if (s < 1) return "Less than a second ago";
  if (s < 60) return `${s} seconds ago`;
  if (s < 120) return "About a minute ago";
  if (s < 3600) return `${Math.floor(s / 60)} minutes ago`;
  if (s < 7200) return "About an hour ago";
  if (s < 86400) return `${Math.floor(s / 3600)} hours ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

/** Columns padded like Docker's tables (three spaces between columns). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3)))
      .join("")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}
