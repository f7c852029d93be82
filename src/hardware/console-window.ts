import { HyperlabError } from "../errors.ts";

/** A pending wait for text on a byte stream. */
interface Waiter {
  pattern: RegExp;
  /** absolute offset in the stream from which a match counts */
  from: number;
  resolve: (match: RegExpExecArray) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Longest text a single match may span across chunk boundaries. */
const OVERLAP = 4096;

/**
 * The recent text of a console, kept in a bounded window, with waits for
 * patterns. Each chunk is searched once, together with the tail of what came
 * before it, so matching costs O(bytes), not O(bytes²) as appending every byte
 * to one string and searching it all would.
 */
export class ConsoleWindow {
  private text = "";
  /** absolute stream offset of text[0] */
  private start = 0;
  private readonly waiters = new Set<Waiter>();
  private closed: Error | undefined;

  constructor(private readonly size = 64 * 1024) {}

  /** Total characters seen so far (an absolute offset). */
  get offset(): number {
    return this.start + this.text.length;
  }

  /** The most recent `n` characters. */
  tail(n = 2000): string {
    return this.text.slice(-n);
  }

  /** Adds a chunk of console text and settles every wait it satisfies. */
  push(chunk: string): void {
    const searchFrom = Math.max(this.start, this.offset - OVERLAP);
    this.text += chunk;
    if (this.text.length > this.size) {
      const drop = this.text.length - this.size;
      this.text = this.text.slice(drop);
      this.start += drop;
    }
    for (const w of this.waiters) this.tryMatch(w, Math.max(searchFrom, w.from));
  }

  /**
   * Waits until `pattern` appears in text that arrives after this call (or
   * after `from`). Rejects with TIMEOUT naming `what` and the last output.
   */
  waitFor(
    pattern: RegExp,
    opts: { timeoutMs: number; what: string; from?: number; signal?: AbortSignal },
  ): Promise<RegExpExecArray> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pattern: new RegExp(pattern.source, pattern.flags.replace("g", "")),
        from: opts.from ?? this.offset,
        resolve,
        reject,
        timer: undefined,
      };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(
          new HyperlabError(
            "TIMEOUT",
            `timed out after ${opts.timeoutMs} ms waiting for ${opts.what}; last console output:\n${this.tail(600)}`,
            { waitedFor: opts.what },
          ),
        );
      }, opts.timeoutMs);
      this.waiters.add(w);
      opts.signal?.addEventListener("abort", () => {
        if (!this.waiters.delete(w)) return;
        clearTimeout(w.timer);
        reject(opts.signal!.reason);
      });
      this.tryMatch(w, Math.max(this.start, w.from));
    });
  }

  /** Rejects every pending and future wait with `err` (the machine stopped). */
  close(err: Error): void {
    this.closed = err;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
  }

  private tryMatch(w: Waiter, from: number): void {
    const m = w.pattern.exec(this.text.slice(from - this.start));
    if (!m) return;
    m.index += from;
    clearTimeout(w.timer);
    this.waiters.delete(w);
    w.resolve(m);
  }
}
