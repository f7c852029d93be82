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
  private held = 0;

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
    this.running = (document.visibilityState === "hidden" || this.held > 0 ? Promise.resolve() : this.read())
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

  /**
   * Holds the reads (the timer goes on, each turn reads nothing) until the
   * returned release is called; resolves once a read under way has ended.
   * For a measurement that must not see this view's own reads.
   */
  async hold(): Promise<() => void> {
    this.held++;
    await this.running;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held--;
    };
  }

  /** Stops for good; legal at any time (a read under way ends without scheduling another). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
