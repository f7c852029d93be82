// The stack view's reads repeat on a timer, but an action wants its result
// shown at once, and two reads of the same thing must never overlap.

/**
 * Runs `read` every `periodMs` while the page is visible, one at a time;
 * `now()` reads at once (or once more right after a read in progress).
 */
export class Refresher {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly periodMs: number,
    private readonly read: () => Promise<void>,
  ) {}

  /** Reads now, or once more after the read under way; resolves when that read is done (at once once stopped). */
  now(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    clearTimeout(this.timer);
    this.running = (document.visibilityState === "hidden" ? Promise.resolve() : this.read())
      .catch(() => {})
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          void this.now();
        } else this.timer = setTimeout(() => void this.now(), this.periodMs);
      });
    return this.running;
  }

  /** Stops for good; legal at any time (a read under way ends without scheduling another). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
