// A test file for node:test that goes wrong while its VMs run: one test
// fails, one times out in the middle of a guest command. Run by
// testing.test.ts, which expects this process to report both failures and
// then end on its own: the lab's clean-up in the runner's hooks ends every
// VM and worker thread, which would otherwise keep it alive.
import { after, afterEach, test } from "node:test";
import { testLab } from "../../src/testing/index.ts";

const lab = testLab({ afterEach, afterAll: after, warm: 1 });

test("fails on purpose while its VM runs", async () => {
  const vm = await lab.vm();
  await vm.exec("true");
  throw new Error("this test fails on purpose");
});

test("times out while its VM runs a long command", { timeout: 3000 }, async () => {
  const vm = await lab.vm();
  await vm.exec("sleep 600", { timeoutMs: 600_000 });
});
