// The page's VMs across a reload (<hyperlab-vm persist> on the site's page):
// files, a shell variable, a running container and a second VM come back as
// they were, not a fresh boot; a damaged save falls back to a fresh machine
// with a notice saying why; `?fresh` and "Start over" give a fresh machine.
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lab, openLab, run, screenshot, waitForPrompt } from "./browser.ts";

const VM = "hyperlab-vm";
/** The first docker in a VM fetches its client (14.6 MB) and busybox from the site: minutes on a loaded machine. */
const DOCKER_MS = 300_000;

/** What the element says about its save and restore. */
async function saveView(page: Page): Promise<{ restore?: string; saves: number; savedVms: number; savedBytes: number; saveMs: number; savedAt?: string; notice: string | null }> {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel) as HTMLElement;
    const notice = el.shadowRoot!.querySelector<HTMLElement>(".notice")!;
    return {
      restore: el.dataset.restore,
      saves: Number(el.dataset.saves ?? 0),
      savedVms: Number(el.dataset.savedVms ?? 0),
      savedBytes: Number(el.dataset.savedBytes ?? 0),
      saveMs: Number(el.dataset.saveMs ?? 0),
      savedAt: el.dataset.savedAt,
      notice: notice.hidden ? null : notice.querySelector("p")!.textContent,
    };
  }, VM);
}

/** Waits for a save newer than `after` (an ISO time, or none) that holds `vms` VMs, taken once the page went quiet. */
async function waitForSave(page: Page, what: string, vms: number, after?: string): Promise<Awaited<ReturnType<typeof saveView>>> {
  let view = await saveView(page);
  await expect
    .poll(
      async () => {
        view = await saveView(page);
        return view.savedVms === vms && view.savedAt !== undefined && (after === undefined || view.savedAt > after);
      },
      { timeout: 150_000, message: `a save of ${vms} VM(s) after ${what}` },
    )
    .toBe(true);
  return view;
}

/** The save's pointer and parts as IndexedDB holds them, changed by `damage` in the page (to test what a reload does with them). */
async function damageSave(page: Page, how: "truncate" | "flip"): Promise<void> {
  await page.evaluate(async (how) => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open("hyperlab-pages");
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const get = <T,>(store: string, key: IDBValidKey) =>
      new Promise<T>((resolve, reject) => {
        const r = db.transaction(store).objectStore(store).get(key);
        r.onsuccess = () => resolve(r.result as T);
        r.onerror = () => reject(r.error);
      });
    const put = (store: string, key: IDBValidKey, value: unknown) =>
      new Promise<void>((resolve, reject) => {
        const tx = db.transaction(store, "readwrite");
        tx.objectStore(store).put(value, key);
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
      });
    const key = "hyperlab-vm /";
    const pointer = await get<{ parts: Array<{ key: string; bytes: number; sha256: string }> }>("saves", key);
    const part = pointer.parts[0]!;
    const bytes = await get<Uint8Array>("parts", part.key);
    if (how === "truncate") {
      await put("parts", part.key, bytes.slice(0, bytes.length >> 1));
    } else {
      // One byte of the snapshot's payload changed, and the pointer made to agree: the snapshot's own checksum must catch it.
      const changed = bytes.slice();
      const at = changed.length - 100;
      changed[at] = changed[at]! ^ 0xff;
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", changed));
      part.sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
      await put("parts", part.key, changed);
      await put("saves", key, pointer);
    }
    db.close();
  }, how);
}

describe("the page's VMs across a reload", () => {
  let lab: Lab;
  let uptimeBefore = 0;

  beforeAll(async () => {
    lab = await openLab({ viewport: { width: 1400, height: 1000 } });
  });
  afterAll(async () => {
    await lab?.close();
  });

  const layer = (name: string) => lab.page.locator(`${VM} .stack [data-layer=${name}]`);
  const uptime = async () => Number(/\n(\d+\.\d+) /.exec(await run(lab.page, VM, "cat /proc/uptime", /\n\d+\.\d+ \d+\.\d+/))![1]);

  it("brings back files, the shell, a running container and a second VM after a reload, without a fresh boot", async () => {
    const { page, site } = lab;
    await page.goto(site.url);
    await waitForPrompt(page, VM);
    expect((await saveView(page)).restore).toBe("fresh");
    await run(page, VM, "echo kept across the reload > /root/note.txt; KEPT=shell-$((6*7)); echo ok", /\nok\r?\n/);
    await run(page, VM, "docker run -d --name keeper busybox sleep 3600", /\n[0-9a-f]{64}\r?\n/, DOCKER_MS);
    await layer("hypervisor").locator('button[data-action="create-vm"]').click();
    await expect.poll(() => layer("hypervisor").locator('.item.vm[data-vm="vm-1"]').getAttribute("data-state", { timeout: 1000 }).catch(() => null), { timeout: 60_000 }).toBe("running");
    uptimeBefore = await uptime();
    const saved = await waitForSave(page, "the second VM was created", 2);
    console.log(`save of 2 VMs: ${(saved.savedBytes / 1e6).toFixed(2)} MB in ${saved.saveMs} ms`);
    // A save is the changed pages only, compressed: far below the VMs' 2 × 128 MiB.
    expect(saved.savedBytes).toBeLessThan(40e6);

    const t0 = Date.now();
    await page.reload();
    await waitForPrompt(page, VM);
    await expect.poll(async () => (await saveView(page)).restore, { timeout: 60_000, message: "the saved VMs to be back" }).toBe("saved");
    console.log(`reload to restored VMs: ${Date.now() - t0} ms`);
    const view = await saveView(page);
    expect(view.notice).toMatch(/^Your machine is back as it was saved in this browser on .+, with 1 more VM\. "Start over" \(or \?fresh in the address\) gives a fresh one\.$/);
    await screenshot(page, "reload-restored");

    // The same shell (its variable), the same files, the clock going on from where it was.
    await run(page, VM, "echo $KEPT; cat /root/note.txt", /\nshell-42\r?\nkept across the reload\r?\n/);
    expect(await uptime()).toBeGreaterThanOrEqual(uptimeBefore);
    // The container is listed and still running: its process was in the VM's memory, its record in the save.
    await run(page, VM, "docker ps -a", /busybox(:latest)?\s+"sleep 3600"\s+.*Up .*\s+keeper/, 60_000);
    await run(page, VM, "docker exec keeper cat /proc/1/cmdline | tr '\\0' ' '; echo", /\nsleep 3600 \r?\n/, 60_000);
    // The second VM is back, running.
    await expect.poll(() => layer("hypervisor").locator('.item.vm[data-vm="vm-1"]').getAttribute("data-state", { timeout: 1000 }).catch(() => null), { timeout: 30_000 }).toBe("running");
  }, DOCKER_MS + 240_000);

  it("falls back to a fresh machine with a notice when the saved bytes are damaged", async () => {
    const { page } = lab;
    await run(page, VM, "echo second save > /root/note.txt", /\n/);
    const before = (await saveView(page)).savedAt;
    await waitForSave(page, "the note was written again", 2, before);
    await damageSave(page, "truncate");
    await page.reload();
    await waitForPrompt(page, VM);
    const view = await saveView(page);
    expect(view.restore).toBe("fallback");
    expect(view.notice).toMatch(/^Your saved machine could not be brought back: part 1 of 2 holds \d+ bytes, \d+ were saved\. This is a fresh machine; it is kept in this browser from now on\.$/);
    await screenshot(page, "reload-damaged");
    await run(page, VM, "cat /root/note.txt; echo KEPT=$KEPT", /No such file or directory[\s\S]*\nKEPT=\r?\n/);
    expect(await layer("hypervisor").locator('.item.vm[data-vm="vm-1"]').count()).toBe(0);
  }, 180_000);

  it("falls back when the bytes agree with the save's record but not with the snapshot's own checksum", async () => {
    const { page } = lab;
    await run(page, VM, "echo third save > /root/note.txt", /\n/);
    await waitForSave(page, "the note was written", 1, (await saveView(page)).savedAt);
    await damageSave(page, "flip");
    await page.reload();
    await waitForPrompt(page, VM);
    const view = await saveView(page);
    expect(view.restore).toBe("fallback");
    expect(view.notice).toMatch(/^Your saved machine \(from .+\) could not be brought back: the snapshot is damaged: .+ This is a fresh machine; it is kept in this browser from now on\.$/);
    await run(page, VM, "cat /root/note.txt", /No such file or directory/);
  }, 180_000);

  it("starts fresh with ?fresh, and the address loses it so that the next reload brings the new machine back", async () => {
    const { page, site } = lab;
    await run(page, VM, "echo before fresh > /root/note.txt", /\n/);
    await waitForSave(page, "the note was written", 1, (await saveView(page)).savedAt);
    await page.goto(`${site.url}?fresh`);
    await waitForPrompt(page, VM);
    const view = await saveView(page);
    expect(view.restore).toBe("fresh");
    expect(view.notice).toBe("A fresh machine, as the address asked (?fresh): the one kept in this browser was forgotten.");
    expect(page.url()).toBe(site.url);
    await run(page, VM, "cat /root/note.txt", /No such file or directory/);
    await run(page, VM, "echo after fresh > /root/note.txt", /\n/);
    await waitForSave(page, "the note was written on the fresh machine", 1);
    await page.reload();
    await waitForPrompt(page, VM);
    await expect.poll(async () => (await saveView(page)).restore, { timeout: 30_000 }).toBe("saved");
    await run(page, VM, "cat /root/note.txt", /\nafter fresh\r?\n/);
  }, 180_000);

  it("starts over with the button: a fresh machine, and the save forgotten", async () => {
    const { page } = lab;
    page.once("dialog", (d) => void d.accept());
    await page.locator(`${VM} header .start-over`).click();
    await expect.poll(async () => (await saveView(page)).notice).toBe("A fresh machine: the one kept in this browser was forgotten.");
    await waitForPrompt(page, VM);
    await run(page, VM, "cat /root/note.txt", /No such file or directory/);
    // What a reload brings back now is the new machine (or nothing yet), never the note.
    await page.reload();
    await waitForPrompt(page, VM);
    await run(page, VM, "cat /root/note.txt", /No such file or directory/);
  }, 180_000);
});
