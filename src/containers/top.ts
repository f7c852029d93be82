// A container's processes (`docker top`): the processes of its cgroup, as the
// VM sees them (PIDs in the VM's namespace, users by the VM's /etc/passwd),
// the way dockerd lists the host's view of a container. Docker's default
// columns (those of `ps -ef`) are built from /proc, since the guest's busybox
// ps has no such format; other ps arguments go to busybox ps and its rows are
// kept when their PID is the container's, as dockerd filters procps' output.
import { HyperlabError } from "../errors.ts";

/** What `GET /containers/{id}/top` answers. */
export interface ProcessTable {
  Titles: string[];
  Processes: string[][];
}

/** ps arguments that mean Docker's default listing. */
const DEFAULT_ARGS = new Set(["", "-ef", "-e", "-f", "-fe", "-e -f"]);

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux the guest runs). */
const HZ = 100;

/** Whether `psArgs` asks for Docker's default columns (UID PID PPID C STIME TTY TIME CMD). */
export function isDefaultPsArgs(psArgs: string): boolean {
  return DEFAULT_ARGS.has(psArgs.trim().replace(/\s+/g, " "));
}

/**
 * Prints, for the cgroup tree $1: `@now` (the guest's time), `@uptime`,
 * `@passwd` then the VM's passwd, and for each process `@proc PID`, its
 * /proc stat line, its Uid line and its command line. Shell built-ins read
 * the files; only the command line (NUL-separated) needs tr.
 */
export const DEFAULT_TOP_SCRIPT = `cg=$1
read -r up _ < /proc/uptime
echo "@now $(date +%s) $up"
for f in $(find "$cg" -name cgroup.procs); do
  while read -r pid; do
    read -r s < /proc/$pid/stat || continue
    u=""
    while read -r k v _; do [ "$k" = Uid: ] && u=$v && break; done < /proc/$pid/status
    c=$(tr '\\000\\n' '  ' < /proc/$pid/cmdline 2>/dev/null)
    echo "@proc $pid"; echo "$s"; echo "$u"; echo "$c"
  done < "$f"
done
echo "@passwd"; cat /etc/passwd`;

/** Prints the PIDs of the cgroup tree $1 on one line, then runs busybox ps with the other arguments. */
export const PS_TOP_SCRIPT = `cg=$1; shift
echo $(cat $(find "$cg" -name cgroup.procs))
exec ps "$@"`;

/** "HH:MM:SS" of `seconds` (with "D-" for days), as ps's TIME. */
function cpuTime(seconds: number): string {
  const s = Math.floor(seconds);
  const days = Math.floor(s / 86400);
  const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60].map((n) => String(n).padStart(2, "0")).join(":");
  return days ? `${days}-${hms}` : hms;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** ps's STIME: "HH:MM" today, "MonDD" this year, else the year (the guest's clock, UTC). */
function startTime(start: Date, now: Date): string {
  if (start.toISOString().slice(0, 10) === now.toISOString().slice(0, 10)) return start.toISOString().slice(11, 16);
  if (start.getUTCFullYear() === now.getUTCFullYear()) return `${MONTHS[start.getUTCMonth()]}${String(start.getUTCDate()).padStart(2, "0")}`;
  return String(start.getUTCFullYear());
}

/** ps's TTY of a /proc tty_nr: pts/N, ttyN, ttySN, console, or ?. */
function ttyName(ttyNr: number): string {
  if (!ttyNr) return "?";
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `pts/${(major - 136) * 256 + minor}`;
  if (major === 4) return minor < 64 ? `tty${minor}` : `ttyS${minor - 64}`;
  if (major === 5 && minor === 1) return "console";
  return "?";
}

/** Docker's default table (UID PID PPID C STIME TTY TIME CMD) from DEFAULT_TOP_SCRIPT's output. */
export function parseDefaultTop(output: string): ProcessTable {
  const lines = output.split("\n");
  let now = new Date();
  let uptime = 0;
  const users = new Map<string, string>();
  const rows: string[][] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith("@now ")) {
      const [, secs, up] = line.split(" ");
      now = new Date(Number(secs) * 1000);
      uptime = Number(up);
    } else if (line.startsWith("@proc ")) {
      const pid = line.slice(6).trim();
      const stat = lines[i + 1] ?? "";
      const uid = (lines[i + 2] ?? "").trim();
      const cmdline = (lines[i + 3] ?? "").trim();
      i += 3;
      // The command name may hold spaces and parentheses: the fields follow its last ')'.
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const field = (n: number) => Number(f[n - 3] ?? 0); // proc(5) numbering: state is field 3
      const cpu = (field(14) + field(15)) / HZ;
      const started = field(22) / HZ;
      const elapsed = uptime - started;
      rows.push([
        uid,
        pid,
        String(field(4)),
        String(elapsed > 0 ? Math.floor((cpu / elapsed) * 100) : 0),
        startTime(new Date(now.getTime() - elapsed * 1000), now),
        ttyName(field(7)),
        cpuTime(cpu),
        cmdline || `[${comm}]`,
      ]);
    } else if (line === "@passwd") {
      for (const entry of lines.slice(i + 1)) {
        const [name, , uid] = entry.split(":");
        if (name && uid !== undefined && !users.has(uid)) users.set(uid, name);
      }
      break;
    }
  }
  for (const r of rows) r[0] = users.get(r[0]!) ?? r[0]!;
  rows.sort((a, b) => Number(a[1]) - Number(b[1]));
  return { Titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], Processes: rows };
}

/**
 * The rows of ps output (after PS_TOP_SCRIPT's line of PIDs) whose PID is
 * one of the container's, as dockerd parses procps: the titles split on
 * blanks, the last column takes the rest of the line; a thread's "-" row
 * follows its process.
 */
export function parsePsTop(output: string): ProcessTable {
  const [pidLine = "", titleLine = "", ...rest] = output.split("\n");
  const pids = new Set(pidLine.trim().split(/\s+/).filter(Boolean));
  const titles = titleLine.trim().split(/\s+/).filter(Boolean);
  const pidIndex = titles.indexOf("PID");
  if (pidIndex < 0) throw new HyperlabError("INVALID_ARGUMENT", "Couldn't find PID field in ps output: include pid in the ps arguments (-o pid,...)");
  const processes: string[][] = [];
  let previousKept = false;
  for (const line of rest) {
    const fields = line.trim().split(/\s+/).filter(Boolean);
    if (!fields.length) continue;
    const pid = fields[pidIndex];
    const keep: boolean = pid === "-" ? previousKept : pids.has(pid ?? "");
    if (pid !== "-") previousKept = keep;
    if (keep) processes.push([...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(" ")]);
  }
  return { Titles: titles, Processes: processes };
}
