// Lab files as hostile input (fast-check): the example labs with lines
// dropped, duplicated, swapped or inserted (front-matter keys, fences, check
// blocks), text cut anywhere, YAML of any shape in the front matter, and
// random text. parseLab either gives a lab or fails with LAB_INVALID naming
// the file and line, never a TypeError or a hang; and renderLabMarkdown
// never lets a tag of the lab's text through as HTML.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { parseLab, renderLabMarkdown } from "../../../src/labs/parse-lab.ts";
import { anyJson, coded, mutatedText, params } from "../properties.ts";

const LABS = resolve(dirname(fileURLToPath(import.meta.url)), "../../../examples/labs");
const labs = readdirSync(LABS)
  .filter((f) => f.endsWith(".md"))
  .map((f) => ({ file: f, text: readFileSync(join(LABS, f), "utf8") }));

/** What a lab file is made of, to insert: front-matter keys, fences, headings, YAML's own syntax. */
const pieces = [
  "---", "```sh", "```sh setup", "```sh check", "```hint", "```sh solution", "```", "## Step", "# Title", "id: x", "title: y", "timeout: -1", "timeout: 1e309",
  "machine:", "  memory: 99999999", "  profile: nosuch", "  registry: localhost:5000", "checks:", "- run: true", "&a [*a]", "!!binary AAAA", "? [a]: b", "key: {", "\t", "\u0000", "<script>alert(1)</script>",
];

function parse(text: string, file: string) {
  return coded(() => parseLab(text, file)).then((out) => {
    if (!out.ok) expect(out.error.code).toBe("LAB_INVALID");
    return out;
  });
}

describe("lab files as hostile input", () => {
  it("the example labs parse (the properties below start from these)", async () => {
    for (const { file, text } of labs) expect((await parse(text, file)).ok, file).toBe(true);
  });

  it("a mutated example lab parses or fails with LAB_INVALID", async () => {
    const mutated = fc.integer({ min: 0, max: labs.length - 1 }).chain((i) => mutatedText(labs[i]!.text, pieces).map((text) => ({ file: labs[i]!.file, text })));
    await fc.assert(
      fc.asyncProperty(mutated, async ({ file, text }) => {
        await parse(text, file);
      }),
      params(),
    );
  });

  it("front matter of any YAML shape parses or fails with LAB_INVALID", async () => {
    const body = labs[0]!.text.replace(/^---\n[\s\S]*?\n---\n/, "");
    const front = fc.oneof(anyJson.map((v) => stringify(v)), fc.string({ maxLength: 60 }), fc.dictionary(fc.constantFrom("id", "title", "machine", "timeout", "checks", "setup", "images"), anyJson).map((v) => stringify(v)));
    await fc.assert(
      fc.asyncProperty(front, async (yaml) => {
        await parse(`---\n${yaml}\n---\n${body}`, "front.md");
      }),
      params(),
    );
  });

  it("random text parses or fails with LAB_INVALID", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 200 })), async (text) => {
        await parse(text, "random.md");
      }),
      params(),
    );
  });

  it("renderLabMarkdown never passes a tag of the lab's text through as HTML", async () => {
    const tag = fc.constantFrom("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href=\"javascript:alert(1)\">x</a>", "<iframe src=//x>", "[x](javascript:alert(1))");
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: labs.length - 1 }), tag, fc.nat(), async (i, t, at) => {
        const text = labs[i]!.text;
        const where = at % (text.length + 1);
        const html = renderLabMarkdown(text.slice(0, where) + t + text.slice(where));
        // As a tag or an attribute, not as escaped text (&lt;script&gt; is what a learner should see).
        expect(html).not.toMatch(/<(script|img|iframe)\b|<[a-z][^>]*\son\w+\s*=|href\s*=\s*["']?\s*javascript:/i);
      }),
      params(),
    );
  });
});
