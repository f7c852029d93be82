import { describe, expect, it } from "vitest";
import { loadNodeImage } from "../../src/hardware/node.ts";
import { newMachine, errorOf } from "./guest.ts";


describe("booting a guest that cannot come up", () => {
  it("rejects with GUEST_PANIC and the kernel's panic line when init cannot run", async () => {
    const machine = await newMachine({ cmdline: "init=/nonexistent" });
    const err = await errorOf(machine.boot({ timeoutMs: 60_000 }));
    expect(err.code).toBe("GUEST_PANIC");
    expect(err.message).toMatch(/Kernel panic - not syncing: Attempted to kill init!/);
    expect(err.message).toContain("hyperlab-init: cannot run init=/nonexistent: No such file or directory");
    expect(machine.state).toBe("stopped");
  });

  it("rejects with BOOT_TIMEOUT naming what it waited for, and stops the machine", async () => {
    const machine = await newMachine();
    const started = performance.now();
    const err = await errorOf(machine.boot({ timeoutMs: 400 }));
    expect(err.code).toBe("BOOT_TIMEOUT");
    expect(err.message).toMatch(/^the guest did not boot within 400 ms: it was still waiting for (the kernel's first console byte|\/init to start|the guest's ready signal)\. Last console output:/);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(machine.state).toBe("stopped");
  });

  it("rejects with GUEST_BOOT_FAILED when the loader finds the kernel in the wrong place", async () => {
    const image = await loadNodeImage();
    const misplaced = {
      ...image,
      manifest: { ...image.manifest, kernel: { ...image.manifest.kernel, load: image.manifest.kernel.load * 2 } },
    };
    const machine = await newMachine({ image: misplaced });
    const err = await errorOf(machine.boot({ timeoutMs: 60_000 }));
    expect(err.code).toBe("GUEST_BOOT_FAILED");
    expect(err.message).toMatch(/the boot loader failed: the module is not at the kernel's load address/);
  });

  it("refuses memory too small to hold the kernel and initramfs", async () => {
    const err = await errorOf(newMachine({ memoryMiB: 32 }));
    expect(err.code).toBe("INVALID_ARGUMENT");
    expect(err.message).toMatch(/memory 32 MiB is not usable: this image needs a whole number from \d+ to 2047 MiB/);
  });

  it("rejects a second boot of the same machine", async () => {
    const machine = await newMachine();
    await machine.boot({ timeoutMs: 60_000 });
    const err = await errorOf(machine.boot());
    expect(err.code).toBe("VM_INVALID_STATE");
    expect(err.message).toBe("cannot boot: machine is running");
    await machine.stop();
    expect(() => machine.write("x")).toThrow(/cannot write to the console: machine is stopped/);
  });
});
