import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CONTENT_SECURITY_POLICY, CSP_DIRECTIVES, cspMetaTag, headersFile, parseCsp, serializeCsp } from "../../../src/web/csp.ts";

describe("the site's Content-Security-Policy", () => {
  const policy = parseCsp(CONTENT_SECURITY_POLICY);

  it("lets scripts come only from the site: no inline script, no eval, WebAssembly allowed", () => {
    expect(policy["script-src"]).toEqual(["'self'", "'wasm-unsafe-eval'"]);
    for (const [name, sources] of Object.entries(policy)) {
      expect(sources, name).not.toContain("'unsafe-eval'");
      expect(sources, name).not.toContain("*");
      expect(sources, name).not.toContain("blob:");
      if (name !== "style-src") expect(sources, name).not.toContain("'unsafe-inline'");
    }
  });

  it("lets workers (v86's timer worker too: a file of the site, not a Blob) and fetches reach the site's own files only, and nothing else by default", () => {
    expect(policy["default-src"]).toEqual(["'self'"]);
    expect(policy["worker-src"]).toEqual(["'self'"]);
    expect(policy["connect-src"]).toEqual(["'self'"]);
    expect(policy["img-src"]).toEqual(["'self'", "data:"]);
  });

  it("allows no plugins, no <base> and no form sent anywhere", () => {
    expect(policy["object-src"]).toEqual(["'none'"]);
    expect(policy["base-uri"]).toEqual(["'none'"]);
    expect(policy["form-action"]).toEqual(["'none'"]);
  });

  it("holds only directives a <meta> policy may carry (no frame-ancestors, sandbox or report-uri)", () => {
    for (const name of ["frame-ancestors", "sandbox", "report-uri", "report-to"]) expect(policy[name], name).toBeUndefined();
  });

  it("serialises to one line of `name sources` joined by '; ', and parses back to the same directives", () => {
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/[\r\n,]/);
    expect(serializeCsp({ "default-src": ["'self'"], "img-src": ["'self'", "data:"] })).toBe("default-src 'self'; img-src 'self' data:");
    expect(parseCsp(CONTENT_SECURITY_POLICY)).toEqual(Object.fromEntries(Object.entries(CSP_DIRECTIVES).map(([k, v]) => [k, [...v]])));
  });

  it("parses as browsers do: names without case, the first of a repeated directive wins, empty parts skipped", () => {
    expect(parseCsp("Script-Src 'self';; script-src *; img-src")).toEqual({ "script-src": ["'self'"], "img-src": [] });
  });

  it("writes the <meta> with its quotes escaped, so the attribute holds the whole policy", () => {
    expect(cspMetaTag(`a 'b' "c" &`)).toBe(`<meta http-equiv="Content-Security-Policy" content="a 'b' &quot;c&quot; &amp;" />`);
    const content = /content="([^"]*)"/.exec(cspMetaTag())![1]!;
    expect(content.replace(/&quot;/g, '"').replace(/&amp;/g, "&")).toBe(CONTENT_SECURITY_POLICY);
  });

  it("writes a _headers file that gives every path of the site the policy", () => {
    expect(headersFile().split("\n")).toEqual(["/*", `  Content-Security-Policy: ${CONTENT_SECURITY_POLICY}`, "  X-Content-Type-Options: nosniff", ""]);
  });

  it("is the policy docs/web.md gives for nginx, Apache and _headers, word for word", () => {
    const docs = readFileSync(fileURLToPath(new URL("../../../docs/web.md", import.meta.url)), "utf8");
    const shown = docs.split("\n").filter((l) => /default-src .*; script-src/.test(l));
    expect(shown.length).toBeGreaterThanOrEqual(3);
    for (const line of shown) expect(line, line).toContain(CONTENT_SECURITY_POLICY);
  });
});

describe("HTML in the web layer", () => {
  const WEB = fileURLToPath(new URL("../../../src/web/", import.meta.url));
  const files = readdirSync(WEB, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  /** Ways a string becomes markup (or script) in a page. */
  const SINKS = /\.(?:innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|createContextualFragment|\.srcdoc\b|setHTMLUnsafe|parseHTMLUnsafe|DOMParser|new Function|\beval\(/g;

  it("parses strings as HTML only for the elements' fixed templates and a lab's Markdown (rendered with raw HTML off)", () => {
    const found = files.flatMap((f) =>
      readFileSync(join(WEB, f), "utf8")
        .split("\n")
        .flatMap((line, i) => (line.match(SINKS) ? [`${f}:${i + 1}: ${line.trim()}`] : [])),
    );
    // Each use, by what it parses: a template of the file's own (its <style> and fixed markup), or this.render! (renderLabMarkdown).
    expect(found.map((l) => l.replace(/:\d+:/, ":"))).toEqual([
      "hyperlab-lab.ts: this.root.innerHTML = `<style>${STYLE}</style>",
      "hyperlab-lab.ts: this.parts.intro.innerHTML = this.render!(lab.intro);",
      "hyperlab-lab.ts: text.innerHTML = this.render!(step.text);",
      "hyperlab-lab.ts: div.innerHTML = this.render!(h);",
      "hyperlab-vm.ts: this.root.innerHTML = `",
    ]);
  });
});
