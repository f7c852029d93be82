// What the VM worker's code expects from Node that a browser worker lacks.
// The web build loads this first in every VM worker (see vite.config.ts).

type Immediate = (callback: (...args: unknown[]) => void, ...args: unknown[]) => unknown;

/**
 * setImmediate, which the machine uses to batch console bytes: a task after
 * the current one, through a MessageChannel (setTimeout(0) would be clamped
 * to 4 ms once nested, slowing console output).
 */
function installSetImmediate(): void {
  const g = globalThis as { setImmediate?: Immediate };
  if (typeof g.setImmediate === "function") return;
  const queue: Array<() => void> = [];
  const channel = new MessageChannel();
  channel.port1.onmessage = () => queue.shift()?.();
  let id = 0;
  g.setImmediate = (callback, ...args) => {
    queue.push(() => callback(...args));
    channel.port2.postMessage(0);
    return ++id;
  };
}

installSetImmediate();
