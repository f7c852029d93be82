// v86's timer worker, as a file of the site. In a browser v86 wakes its
// emulator loop through a worker that answers each "yield" message at once
// (or after the delay asked for), so the loop is not held to the 4 ms clamp
// of nested timers. v86 makes that worker from a Blob of its own code, which
// a Content-Security-Policy without `worker-src blob:` refuses; the web build
// points v86 at this file instead (vite.config.ts, v86TimerFile), the same
// code line for line.

/** What v86 posts: the delay in ms (under 1: at once) and the tick to send back. */
interface YieldMessage {
  t: number;
  tick: number;
}

const scope = globalThis as unknown as { onmessage: ((e: MessageEvent<YieldMessage>) => void) | null; postMessage(message: unknown): void };
let timer: ReturnType<typeof setTimeout> | undefined;

scope.onmessage = (e) => {
  const delay = e.data.t;
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  if (delay < 1) scope.postMessage(e.data.tick);
  else timer = setTimeout(() => scope.postMessage(e.data.tick), delay);
};
