import { describe, expect, it } from "vitest";
import { HyperlabError } from "../../../src/errors.ts";
import { ConsoleWindow } from "../../../src/hardware/console-window.ts";

describe("ConsoleWindow", () => {
  it("resolves a wait when its pattern arrives split across chunks", async () => {
    const w = new ConsoleWindow();
    const wait = w.waitFor(/ready in (\d+)s/, { timeoutMs: 1000, what: "ready" });
    w.push("booting... rea");
    w.push("dy in 4");
    w.push("2s\n");
    const m = await wait;
    expect(m[1]).toBe("42");
    expect(m.index).toBe("booting... ".length);
  });

  it("matches only text that arrives after the wait began unless told otherwise", async () => {
    const w = new ConsoleWindow();
    w.push("old marker\n");
    const fresh = w.waitFor(/marker/, { timeoutMs: 1000, what: "a new marker" });
    const fromStart = await w.waitFor(/marker/, { timeoutMs: 1000, what: "any marker", from: 0 });
    expect(fromStart.index).toBe(4);
    w.push("new marker\n");
    expect((await fresh).index).toBe("old marker\nnew ".length);
  });

  it("keeps a bounded window however much text passes through", () => {
    const w = new ConsoleWindow(1024);
    for (let i = 0; i < 1000; i++) w.push(`line ${i} `.padEnd(100, "x"));
    expect(w.offset).toBe(100_000);
    expect(w.tail(5000).length).toBe(1024);
    expect(w.tail(100)).toMatch(/^line 999 x+$/);
  });

  it("rejects with TIMEOUT naming what it waited for and the last output", async () => {
    const w = new ConsoleWindow();
    w.push("Loading kernel\n");
    const err = await w.waitFor(/never/, { timeoutMs: 20, what: "the prompt" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HyperlabError);
    expect((err as HyperlabError).code).toBe("TIMEOUT");
    expect((err as HyperlabError).message).toBe("timed out after 20 ms waiting for the prompt; last console output:\nLoading kernel\n");
  });

  it("rejects pending and later waits once closed", async () => {
    const w = new ConsoleWindow();
    const pending = w.waitFor(/x/, { timeoutMs: 1000, what: "x" });
    const reason = new HyperlabError("GUEST_STOPPED", "stopped");
    w.close(reason);
    await expect(pending).rejects.toBe(reason);
    await expect(w.waitFor(/y/, { timeoutMs: 1000, what: "y" })).rejects.toBe(reason);
  });

  it("drops a wait whose signal aborts, rejecting with the abort reason", async () => {
    const w = new ConsoleWindow();
    const ctl = new AbortController();
    const wait = w.waitFor(/panic/, { timeoutMs: 1000, what: "a panic", signal: ctl.signal });
    ctl.abort(new Error("boot finished"));
    await expect(wait).rejects.toThrow("boot finished");
    w.push("panic\n"); // nothing left to settle
  });
});
