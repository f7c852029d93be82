// Every verb of the `hyperlab` command refuses what it does not understand
// before doing anything: an unknown flag or an argument too many is exit
// status 125 with what was wrong and the verb's usage. No guest is started
// and no daemon is needed (the socket named points nowhere).
import { describe, expect, it } from "vitest";
import { hyperlab } from "./daemon-process.ts";

const NO_DAEMON = "/nonexistent/hyperlab-test.sock";
const cli = (args: string[]) => hyperlab(NO_DAEMON, args);

/** verb (as typed) → its usage line as the error shows it, and arguments with one too many. */
const VERBS: Array<{ verb: string[]; usage: string; extra: string[] }> = [
  { verb: ["boot"], usage: "Usage: hyperlab boot [OPTIONS]", extra: ["now"] },
  { verb: ["run"], usage: "Usage: hyperlab run [OPTIONS] IMAGE [COMMAND] [ARG...]", extra: [] },
  { verb: ["build"], usage: "Usage: hyperlab build [OPTIONS] CONTEXT", extra: ["a", "b"] },
  { verb: ["pull"], usage: "Usage: hyperlab pull [OPTIONS] NAME[:TAG|@DIGEST]", extra: ["a", "b"] },
  { verb: ["push"], usage: "Usage: hyperlab push [OPTIONS] NAME[:TAG]", extra: ["a", "b"] },
  { verb: ["login"], usage: "Usage: hyperlab login [OPTIONS] SERVER", extra: ["a", "b"] },
  { verb: ["logout"], usage: "Usage: hyperlab logout SERVER", extra: ["a", "b"] },
  { verb: ["images"], usage: "Usage: hyperlab images [REPOSITORY[:TAG]]", extra: ["busybox", "lua"] },
  { verb: ["ps"], usage: "Usage: hyperlab ps [-a] [-q] [--vm NAME | --all-vms]", extra: ["web"] },
  { verb: ["exec"], usage: "Usage: hyperlab exec [-i] [-t] [-e KEY=VALUE] [--vm NAME] CONTAINER COMMAND [ARG...]", extra: [] },
  { verb: ["logs"], usage: "Usage: hyperlab logs [--vm NAME] CONTAINER", extra: ["a", "b"] },
  { verb: ["stop"], usage: "Usage: hyperlab stop [-t SECONDS] [--vm NAME] CONTAINER...", extra: [] },
  { verb: ["kill"], usage: "Usage: hyperlab kill [-s SIGNAL] [--vm NAME] CONTAINER...", extra: [] },
  { verb: ["rm"], usage: "Usage: hyperlab rm [-f] [--vm NAME] CONTAINER...", extra: [] },
  { verb: ["inspect"], usage: "Usage: hyperlab inspect [--vm NAME] CONTAINER...", extra: [] },
  { verb: ["port"], usage: "Usage: hyperlab port [--vm NAME] CONTAINER [PRIVATE_PORT[/tcp]]", extra: ["web", "80", "81"] },
  { verb: ["stats"], usage: "Usage: hyperlab stats [--no-stream] [--vm NAME] [CONTAINER...]", extra: [] },
  { verb: ["daemon"], usage: "Usage: hyperlab daemon [OPTIONS]", extra: ["now"] },
  { verb: ["vm", "create"], usage: "Usage: hyperlab vm create [--name NAME] [--memory MIB] [--cpu-share N] [--cold]", extra: ["a"] },
  { verb: ["vm", "ls"], usage: "Usage: hyperlab vm ls", extra: ["a"] },
  { verb: ["vm", "pause"], usage: "Usage: hyperlab vm pause VM...", extra: [] },
  { verb: ["vm", "snapshot"], usage: "Usage: hyperlab vm snapshot VM FILE [--full]", extra: ["a", "a.snap", "b.snap"] },
  { verb: ["vm", "restore"], usage: "Usage: hyperlab vm restore FILE [--name NAME] [--cpu-share N]", extra: ["a.snap", "b.snap"] },
  { verb: ["vm", "fork"], usage: "Usage: hyperlab vm fork VM [-n N]", extra: ["a", "2"] },
  { verb: ["vm", "update"], usage: "Usage: hyperlab vm update --cpu-share N VM...", extra: [] },
  { verb: ["network", "create"], usage: "Usage: hyperlab network create [--subnet CIDR] [--gateway IP] [--internal] [--label KEY=VALUE]... [--vm NAME] NAME", extra: ["a", "b"] },
  { verb: ["network", "ls"], usage: "Usage: hyperlab network ls [--vm NAME]", extra: ["a"] },
  { verb: ["network", "inspect"], usage: "Usage: hyperlab network inspect [--vm NAME] NETWORK...", extra: [] },
  { verb: ["network", "rm"], usage: "Usage: hyperlab network rm [--vm NAME] NETWORK...", extra: [] },
  { verb: ["volume", "create"], usage: "Usage: hyperlab volume create [--label KEY=VALUE]... [NAME]", extra: ["a", "b"] },
  { verb: ["volume", "ls"], usage: "Usage: hyperlab volume ls [--size]", extra: ["a"] },
  { verb: ["volume", "inspect"], usage: "Usage: hyperlab volume inspect VOLUME...", extra: [] },
  { verb: ["volume", "rm"], usage: "Usage: hyperlab volume rm VOLUME...", extra: [] },
  { verb: ["volume", "prune"], usage: "Usage: hyperlab volume prune [--all]", extra: ["a"] },
  { verb: ["lab", "run"], usage: "Usage: hyperlab lab run [OPTIONS] FILE...", extra: [] },
  { verb: ["lab", "check"], usage: "Usage: hyperlab lab check FILE...", extra: [] },
];

describe.concurrent("hyperlab's verbs refuse what they do not understand", () => {
  it.each(VERBS)("$verb refuses an unknown flag with 125 and its usage", async ({ verb, usage }) => {
    const r = await cli([...verb, "--no-such-flag", "x"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("unknown flag: --no-such-flag");
    expect(r.stderr).toContain(usage);
  });

  it.each(VERBS.filter((v) => v.extra.length))("$verb refuses an argument too many with 125 and its usage", async ({ verb, usage, extra }) => {
    const r = await cli([...verb, ...extra]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`unexpected argument '${extra.at(-1)}'`);
    expect(r.stderr).toContain(usage);
  });

  it("`vm fork a 2` names the stray argument and shows -n instead of forking one copy", async () => {
    const r = await cli(["vm", "fork", "a", "2"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("unexpected argument '2'");
    expect(r.stderr).toContain("'hyperlab vm fork a -n 2'");
    expect(r.stdout).toBe("");
  });

  it("a flag that needs a value says so", async () => {
    const r = await cli(["stop", "-t"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("flag --time needs a value");
  });

  it("an unknown verb lists the verbs", async () => {
    const r = await cli(["frobnicate"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("'frobnicate' is not a hyperlab command");
    expect(r.stderr).toContain("vm ");
  });

  it("--help still answers for each verb", async () => {
    for (const { verb } of VERBS.slice(0, 4)) {
      const r = await cli([...verb, "--help"]);
      expect(r.code, verb.join(" ")).toBe(0);
      expect(r.stdout).toContain("Usage: hyperlab");
    }
  });
});
