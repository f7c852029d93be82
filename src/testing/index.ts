// `hyperlab/testing`: the package's test helpers, its whole export list. A
// fresh VM per test from a warm pool, exec and run that return status,
// stdout and stderr, files in and out, and clean-up whatever happens; for
// vitest, jest, mocha and node:test alike (docs/node-api.md).
export { TestLab, testLab } from "./test-lab.ts";
export type { TestHook, TestLabOptions } from "./test-lab.ts";
export { TestVm } from "./test-vm.ts";
export type { CommandResult, TestExecOptions, TestRunOptions } from "./test-vm.ts";
