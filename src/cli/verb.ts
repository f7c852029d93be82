// What one `hyperlab` verb is: its name, a line for the command list, and
// its handler, which resolves to the process's exit status.

/** One verb of the `hyperlab` command (one file each under src/cli/). */
export interface Verb {
  name: string;
  /** one line for `hyperlab --help` */
  summary: string;
  /** runs the verb with the arguments after its name; resolves to the exit status */
  run(args: string[]): Promise<number>;
}

/** Writes to stdout. */
export const write = (s: string): void => void process.stdout.write(s);
