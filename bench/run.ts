// `npm run bench [-- NAME... [--OPTION VALUE]]`: runs the named benchmarks (default: all), each
// writing bench/results/<name>.json.
const all: Record<string, () => Promise<{ run: () => Promise<void> }>> = {
  boot: () => import("./boot.ts"),
  build: () => import("./build.ts"),
  containers: () => import("./containers.ts"),
  daemon: () => import("./daemon.ts"),
  docker: () => import("./docker.ts"),
  hypervisor: () => import("./hypervisor-report.ts"),
  io: () => import("./io.ts"),
  labs: () => import("./labs.ts"),
  profiles: () => import("./profiles.ts"),
  runtimes: () => import("./runtimes.ts"),
  reliability: () => import("./reliability.ts"),
  soak: () => import("./soak.ts"),
  web: () => import("./web.ts"),
};

// Options (`--clients 32`, `--duration=60`) are the benchmarks' own: a value after a flag is not a name.
const args = process.argv.slice(2);
const names = args.filter((a, i) => !a.startsWith("-") && !(i > 0 && args[i - 1]!.startsWith("--") && !args[i - 1]!.includes("=")));
for (const name of names.length ? names : Object.keys(all)) {
  const load = all[name];
  if (!load) {
    console.error(`unknown benchmark '${name}'; there are: ${Object.keys(all).join(", ")}`);
    process.exit(2);
  }
  await (await load()).run();
}
process.exit(0);
