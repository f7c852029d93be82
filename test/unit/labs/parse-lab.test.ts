// Lab files as instructors write them, and as they get them wrong: every
// problem is named with its file and line, in words that say what to do.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { isHyperlabError } from "../../../src/errors.ts";
import { parseLab, renderLabMarkdown } from "../../../src/labs/parse-lab.ts";

const LABS = resolve(dirname(fileURLToPath(import.meta.url)), "../../../examples/labs");

const good = `---
id: hello-file
title: Write a file
machine:
  memory: 160
  profile: docker
timeout: 5
---

# Ignored title

Intro *text*.

\`\`\`sh setup
mkdir -p /root/work
\`\`\`

## Greet

Write \`hello\`.

\`\`\`sh
echo this fence is text
\`\`\`

\`\`\`hint
Use **echo**.
\`\`\`

\`\`\`sh check the greeting is there
grep -qx hello /root/work/greeting
\`\`\`

\`\`\`check
file: /root/work/greeting
equals: hello
timeout: 2
\`\`\`

\`\`\`sh solution
echo hello > /root/work/greeting
\`\`\`

## Count

\`\`\`check
cgroup: /sys/fs/cgroup/lab/
value: pids.max
at-most: 20
\`\`\`

\`\`\`check
process: "^sleep 100$"
in-cgroup: lab
\`\`\`

\`\`\`check
container: box
state: exited
exit-code: 0
image: busybox
logs: hi
\`\`\`

\`\`\`sh solution
true
\`\`\`
`;

/** The problems parseLab reports for `text`, as "line: message". */
function problems(text: string): string[] {
  try {
    parseLab(text, "bad.md");
  } catch (err) {
    if (!isHyperlabError(err, "LAB_INVALID")) throw err;
    return err.message.split("\n").map((l) => l.replace(/^bad\.md:/, ""));
  }
  throw new Error("the lab was read without a problem");
}

const front = "---\nid: x\ntitle: X\n---\n";
const step = "## S\n\n```sh check ok\ntrue\n```\n\n```sh solution\ntrue\n```\n";

describe("parseLab", () => {
  it("reads the front matter, intro, setup, and steps with text, hints, checks and solution", () => {
    const lab = parseLab(good, "good.md");
    expect(lab).toMatchObject({ id: "hello-file", title: "Write a file", machine: { image: "default", memoryMiB: 160, profile: "docker" }, intro: "Intro *text*.", file: "good.md" });
    expect(lab.setup).toEqual([{ script: "mkdir -p /root/work", at: { file: "good.md", line: 15 } }]);
    expect(lab.steps).toHaveLength(2);
    const [greet, count] = lab.steps;
    expect(greet).toMatchObject({ number: 1, title: "Greet", hints: ["Use **echo**."], solution: { script: "echo hello > /root/work/greeting", at: { line: 41 } }, at: { line: 18 } });
    expect(greet!.text).toBe("Write `hello`.\n\n```sh\necho this fence is text\n```");
    expect(greet!.checks).toEqual([
      { kind: "sh", script: "grep -qx hello /root/work/greeting", title: "the greeting is there", timeoutMs: 5000, at: { file: "good.md", line: 30 } },
      { kind: "file", path: "/root/work/greeting", exists: true, match: { equals: "hello" }, title: "/root/work/greeting is hello", timeoutMs: 2000, at: { file: "good.md", line: 34 } },
    ]);
    expect(count!.checks.map((c) => ({ ...c, at: undefined, timeoutMs: undefined }))).toEqual([
      { kind: "cgroup", group: "lab", value: "pids.max", match: { atMost: 20 }, title: "pids.max of cgroup /sys/fs/cgroup/lab/ ≤ 20", at: undefined, timeoutMs: undefined },
      { kind: "process", pattern: "^sleep 100$", running: true, inCgroup: "lab", title: "a process /^sleep 100$/ runs", at: undefined, timeoutMs: undefined },
      { kind: "container", name: "box", state: "exited", exitCode: 0, image: "busybox", logs: "hi", title: "container box is exited", at: undefined, timeoutMs: undefined },
    ]);
  });

  it("takes the machine's defaults: the default image, 128 MiB, profile plain, 10 s per check", () => {
    const lab = parseLab(front + step, "min.md");
    expect(lab.machine).toEqual({ image: "default", memoryMiB: 128, profile: "plain" });
    expect(lab.steps[0]!.checks[0]!.timeoutMs).toBe(10_000);
  });

  it("gives a docker lab the registry it names, and refuses one without docker or with a bad address", () => {
    const lab = parseLab(`---\nid: r\ntitle: R\nmachine:\n  profile: docker\n  registry: localhost:5000\n---\n${step}`, "r.md");
    expect(lab.machine).toEqual({ image: "default", memoryMiB: 128, profile: "docker", registry: "localhost:5000" });
    expect(problems(`---\nid: r\ntitle: R\nmachine:\n  registry: localhost:5000\n---\n${step}`)).toEqual(["5: 'machine': 'registry' is for docker in the guest: it needs 'profile: docker'"]);
    expect(problems(`---\nid: r\ntitle: R\nmachine:\n  profile: docker\n  registry: myreg\n---\n${step}`)).toEqual([
      "6: 'machine': 'registry' is the address a registry is named by in image names, host[:port] with a '.' or ':' in it or 'localhost' (e.g. localhost:5000), not 'myreg'",
    ]);
  });

  it("names file and line of every problem in the front matter", () => {
    expect(problems(`---\nid: Bad Id\ntitle: x\nmachine:\n  memry: 12\n  memory: 64\n  profile: vm\ncolour: red\n---\n${step}`)).toEqual([
      "2: 'id' must be lowercase letters, digits, '.', '_' or '-' (at most 63), not 'Bad Id'",
      "5: 'machine' has no key 'memry' (known: image, memory, profile, registry)",
      "6: 'machine': 'memory' is MiB of guest RAM, at least 96 (got 64)",
      "7: 'machine': 'profile' must be plain or docker, not 'vm'",
      "8: the front matter has no key 'colour' (known: id, title, machine, timeout)",
    ]);
    expect(problems(step)[0]).toMatch(/^1: a lab starts with front matter/);
    expect(problems(`---\ntitle: [unclosed\n---\n${step}`)[0]).toMatch(/^2: the front matter is not valid YAML/);
    expect(problems(`---\ntitle: T\n---\n${step}`)).toEqual(["2: the front matter needs 'id': a stable name for the lab (lowercase letters, digits, . _ -), which learner snapshots are matched by"]);
  });

  it("names the line of a bad key in a YAML check, and what the kind allows", () => {
    const text = `${front}## S\n\n\`\`\`check\nfile: /x\nequal: 3\n\`\`\`\n\n\`\`\`check\ncgroup: lab\nat-least: abc\n\`\`\`\n\n\`\`\`check\nfile: /x\ncontainer: y\n\`\`\`\n\n\`\`\`check\nprocess: "(unclosed"\n\`\`\`\n\n\`\`\`check\n- a list\n\`\`\`\n\n\`\`\`sh solution\ntrue\n\`\`\`\n`;
    expect(problems(text)).toEqual([
      "9: file check has no key 'equal' (known: file, title, timeout, exists, equals, contains, matches, at-least, at-most)",
      "12: cgroup check needs 'value': the cgroup file to read (e.g. memory.max)",
      "14: cgroup check: 'at-least' must be a number, not \"abc\"",
      "17: a check looks at one thing, not file and container: split it into two checks",
      expect.stringMatching(/^23: process check: 'process' is a regular expression for the command line: Invalid regular expression/),
      "27: a check must be YAML keys and values (key: value), not a list",
    ]);
  });

  it("refuses steps without a check or a solution, and blocks out of place", () => {
    const text = `${front}\n\`\`\`sh check early\ntrue\n\`\`\`\n\n## Empty\n\ntext\n\n## Late setup\n\n\`\`\`sh setup\ntrue\n\`\`\`\n\n\`\`\`sh check\ntrue\n\`\`\`\n\n\`\`\`solution\ntrue\n\`\`\`\n\n\`\`\`sh solution\na\n\`\`\`\n\n\`\`\`sh solution\nb\n\`\`\`\n`;
    expect(problems(text)).toEqual([
      "6: a check belongs to a step: put it after a '## ' heading",
      "10: step 1 'Empty' has no check: add a ```sh check TITLE or a ```check block",
      "10: step 1 'Empty' has no solution: add a ```sh solution block (what a learner would type; --solve runs it)",
      "14: step 2 'Late setup' has no check: add a ```sh check TITLE or a ```check block",
      "16: setup goes before the first step (it runs before the learner starts), not in step 2 'Late setup'",
      "20: an sh check needs a title after the words: ```sh check WHAT IT CHECKS",
      "24: a solution is shell: write ```sh solution",
      "32: step 2 'Late setup' has more than one solution: put its commands in one block",
    ]);
    expect(problems(front)).toEqual(["5: the lab has no steps: each step starts with a '## ' heading"]);
  });

  it("renders lab text without running HTML: tags are escaped and javascript: links dropped", () => {
    const html = renderLabMarkdown('Hi <script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3)) **bold**');
    expect(html).not.toMatch(/<script|<img|href="javascript/);
    expect(html).toContain("&lt;script&gt;");
    expect(html).toContain("<strong>bold</strong>");
  });

  it("reads every lab of examples/labs/", () => {
    const files = readdirSync(LABS).filter((f) => f.endsWith(".md"));
    expect(files.length).toBe(5);
    for (const f of files) {
      const lab = parseLab(readFileSync(join(LABS, f), "utf8"), f);
      expect(lab.steps.length).toBeGreaterThan(0);
    }
  });
});
