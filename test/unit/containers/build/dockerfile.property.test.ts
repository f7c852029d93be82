// Dockerfiles as hostile input (fast-check): a Dockerfile that uses every
// instruction, and the examples', with lines dropped, duplicated, swapped or
// inserted (instructions, flags, JSON forms, continuations, heredocs,
// directives), text cut anywhere, and random text. parseDockerfile either
// gives the stages or refuses with INVALID_ARGUMENT naming the file and line
// ("dockerfile parse error line N of …"), never a TypeError or a hang; and
// variable expansion (processWords) of any word either expands it or refuses
// it with a coded error.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseDockerfile } from "../../../../src/containers/build/dockerfile.ts";
import { processWords, varsOf } from "../../../../src/containers/build/words.ts";
import { coded, mutatedText, params } from "../../properties.ts";

const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../examples");

/** A Dockerfile with every instruction the builder reads, in both forms where there are two. */
const everything = `# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM \${BASE}:latest AS base
LABEL a=b "c d"="e f"
ENV A=1 B="two words" \\
    C=\${A:-x}
ARG VERSION=1.0
WORKDIR /app/\${VERSION}
COPY --chown=1:1 --chmod=644 a.txt b.txt ./
ADD c.tar /opt/
RUN echo "\$A" > /a && \\
    echo done
RUN ["/bin/sh", "-c", "echo exec form"]
USER 1000:1000
EXPOSE 80 443/tcp
VOLUME ["/data", "/logs"]
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-c"]
HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD wget -q -O- localhost || exit 1
ONBUILD RUN echo onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD echo "\$A"

FROM base
COPY --from=base /a /b
CMD ["cat", "/b"]
`;

const sources = [
  { file: "Dockerfile", text: everything },
  ...["webapp", "lua51-app", "lua54-app"].map((d) => ({ file: `${d}/Dockerfile`, text: readFileSync(resolve(EXAMPLES, d, "Dockerfile"), "utf8") })),
];

const pieces = [
  "FROM", "FROM scratch", "FROM busybox AS", "RUN", "CMD", "CMD []", "CMD [\"a\"", "CMD [1, 2]", "ENTRYPOINT [\"\"]", "COPY", "COPY --from=", "COPY --nosuch=1 a b", "ADD --link a b",
  "ENV", "ENV A", "ENV =x", "ARG", "ARG =", "LABEL", "LABEL =", "EXPOSE 99999", "EXPOSE -1", "EXPOSE 80/sctp", "HEALTHCHECK NONE", "HEALTHCHECK --interval=x CMD true",
  "HEALTHCHECK --retries=-5 CMD true", "ONBUILD ONBUILD RUN x", "ONBUILD FROM x", "ONBUILD", "STOPSIGNAL", "SHELL", "SHELL notjson", "USER", "WORKDIR", "VOLUME", "MAINTAINER x",
  "# escape=`", "# escape=x", "# syntax=other/frontend", "\\", "`", "${", "${A:?boom}", "${A:+", "$", "<<EOF", "RUN <<EOF\necho\nEOF", "\"", "'", "[", "]", "\u0000", "\t",
];

function parse(text: string, file: string) {
  return coded(() => parseDockerfile(text, file)).then((out) => {
    if (!out.ok) {
      expect(out.error.code).toMatch(/^(INVALID_ARGUMENT|NOT_SUPPORTED)$/);
      expect(out.error.message).toContain(file);
    }
    return out;
  });
}

describe("Dockerfiles as hostile input", () => {
  it("the sources parse (the properties below start from these)", async () => {
    for (const { file, text } of sources) expect((await parse(text, file)).ok, file).toBe(true);
  });

  it("a mutated Dockerfile parses or is refused naming its file and line", async () => {
    const mutated = fc.integer({ min: 0, max: sources.length - 1 }).chain((i) => mutatedText(sources[i]!.text, pieces).map((text) => ({ file: sources[i]!.file, text })));
    await fc.assert(
      fc.asyncProperty(mutated, async ({ file, text }) => {
        await parse(text, file);
      }),
      params(),
    );
  });

  it("random text parses or is refused", async () => {
    const text = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 200 }), fc.array(fc.constantFrom(...pieces), { maxLength: 12 }).map((p) => p.join(" ")));
    await fc.assert(
      fc.asyncProperty(text, async (t) => {
        await parse(t, "Dockerfile");
      }),
      params(),
    );
  });

  it("variable expansion of any word expands it or refuses with a coded error", async () => {
    const word = fc.oneof(fc.string({ maxLength: 40 }), fc.array(fc.constantFrom("$A", "${A}", "${A:-x}", "${A:+y}", "${B:?missing}", "${", "}", "$", "\\", "`", "'", "\"", " ", "x", "${A:-${B:-z}}", "$$"), { maxLength: 10 }).map((p) => p.join("")));
    await fc.assert(
      fc.asyncProperty(word, fc.constantFrom("\\", "`"), async (w, escape) => {
        const out = await coded(() => processWords(w, varsOf(["A=1"]), escape));
        if (out.ok) expect(out.value.every((s) => typeof s === "string")).toBe(true);
      }),
      params(),
    );
  });
});
