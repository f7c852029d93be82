// The site's Content-Security-Policy: the one place it is written. The site
// server of `npm start` sends it as a header on every response, the build
// puts it into index.html as a <meta http-equiv> (for hosts that send no
// headers) and writes it into dist/_headers (for Netlify- and
// Cloudflare-Pages-style hosts); docs/web.md gives the same text for nginx
// and Apache. No script of the page's own making, of a lab's or of a guest's
// can run: scripts come only from the site's files, and nothing is ever
// evaluated from a string except WebAssembly.

/** A directive's name → its sources, in the order they are sent. */
export type CspDirectives = Readonly<Record<string, readonly string[]>>;

/**
 * The policy, directive by directive (why each, in docs/web.md,
 * "Content-Security-Policy"). `frame-ancestors` is left out on purpose: a
 * <meta> policy may not carry it, and course platforms frame the page.
 */
export const CSP_DIRECTIVES: CspDirectives = {
  // Anything not named below: the site's own files only.
  "default-src": ["'self'"],
  // The site's module scripts; no inline script, no eval. 'wasm-unsafe-eval' lets WebAssembly compile:
  // v86 itself, its JIT (x86 code compiled to WebAssembly modules as it runs), llhttp and the memory engine.
  "script-src": ["'self'", "'wasm-unsafe-eval'"],
  // The VM workers (module workers, files of the site), v86's timer worker (a file of the site too: the build
  // points v86 at it instead of the Blob it would make) and the published ports' service worker (ports-sw.js).
  "worker-src": ["'self'"],
  // fetch() of the site's files: the boot snapshot, guest files, v86.wasm, tools, lab files, the registry's v2/.
  "connect-src": ["'self'"],
  // xterm.js writes its theme and sizes into <style> elements and colours cells with style attributes as it
  // draws; that CSS is computed at run time, so no hash can name it. CSS cannot run script.
  "style-src": ["'self'", "'unsafe-inline'"],
  // The page's favicon is `data:,` and a lab's Markdown may show a data: image; no image from elsewhere.
  "img-src": ["'self'", "data:"],
  // No plugins, no <base> to move relative URLs elsewhere, no form sent anywhere (the page's forms are handled in script).
  "object-src": ["'none'"],
  "base-uri": ["'none'"],
  "form-action": ["'none'"],
};

/** Serialises directives as a header's (or a <meta>'s) value: `name src src; name src`. */
export function serializeCsp(directives: CspDirectives): string {
  return Object.entries(directives)
    .map(([name, sources]) => [name, ...sources].join(" "))
    .join("; ");
}

/** Parses a policy's text back into directives (first occurrence wins, as browsers do); for tests and checks. */
export function parseCsp(policy: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const part of policy.split(";")) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name && !(name.toLowerCase() in out)) out[name.toLowerCase()] = sources;
  }
  return out;
}

/** The policy's text: the value of the Content-Security-Policy header and of the page's <meta>. */
export const CONTENT_SECURITY_POLICY = serializeCsp(CSP_DIRECTIVES);

/** The <meta> that carries the policy in index.html, for hosts that send no headers of their own. */
export function cspMetaTag(policy = CONTENT_SECURITY_POLICY): string {
  const attr = policy.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
  return `<meta http-equiv="Content-Security-Policy" content="${attr}" />`;
}

/**
 * The build's `_headers` file (Netlify, Cloudflare Pages and hosts that read
 * the same format): the policy, and nosniff, on every path of the site.
 */
export function headersFile(policy = CONTENT_SECURITY_POLICY): string {
  return ["/*", `  Content-Security-Policy: ${policy}`, "  X-Content-Type-Options: nosniff", ""].join("\n");
}
