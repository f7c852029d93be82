import { describe, expect, it } from "vitest";
import { processWord, processWords, varsOf } from "../../../../src/containers/build/words.ts";

const vars = varsOf(["HOME=/root", "NAME=world", "EMPTY="]);

describe("Dockerfile words (dockerd's shell lexer)", () => {
  it("expands $VAR and ${VAR}, and leaves an unset one empty", () => {
    expect(processWord("$HOME/x", vars)).toBe("/root/x");
    expect(processWord("hello-${NAME}!", vars)).toBe("hello-world!");
    expect(processWord("a${UNSET}b$UNSET", vars)).toBe("ab");
  });

  it("takes ${VAR:-default} and ${VAR:+alternative}, and tells unset from empty without the colon", () => {
    expect(processWord("${UNSET:-dflt}", vars)).toBe("dflt");
    expect(processWord("${EMPTY:-dflt}", vars)).toBe("dflt");
    expect(processWord("${EMPTY-dflt}", vars)).toBe("");
    expect(processWord("${NAME:+set}", vars)).toBe("set");
    expect(processWord("${UNSET:+set}", vars)).toBe("");
    expect(processWord("${UNSET:-$NAME}", vars)).toBe("world");
  });

  it("removes quotes: nothing is expanded inside single quotes, variables are inside double quotes", () => {
    expect(processWord("'$HOME'", vars)).toBe("$HOME");
    expect(processWord('"$NAME and \\"q\\""', vars)).toBe('world and "q"');
    expect(processWord('"a\\nb"', vars)).toBe("a\\nb");
  });

  it("honours the escape character, a backtick after `# escape=`", () => {
    expect(processWord("a\\ b\\$HOME", vars)).toBe("a b$HOME");
    expect(processWord("C:\\dir`$x", vars, "`")).toBe("C:\\dir$x");
  });

  it("keeps a lone $ and refuses unterminated quotes and unknown modifiers", () => {
    expect(processWord("cost: $5 $", vars)).toBe("cost: $5 $");
    expect(() => processWord("'open", vars)).toThrow("single-quote");
    expect(() => processWord('"open', vars)).toThrow("double-quote");
    expect(() => processWord("${NAME%.*}", vars)).toThrow("unsupported modifier");
  });

  it("splits several words at unquoted white space", () => {
    expect(processWords(`80/tcp "a b" $NAME`, vars)).toEqual(["80/tcp", "a b", "world"]);
  });
});
