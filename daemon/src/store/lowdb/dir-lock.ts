/**
 * One process per store directory. Two daemons appending to the same WAL would interleave records and corrupt
 * the store, so `open` takes `store.lock` (created exclusively, holding the owner's pid). A lock left by a process
 * that no longer runs — a kill -9, a crash — is taken over. A lock naming this very process is taken over too:
 * it is a copy of a directory (a crash image) or a store of this process that was not closed.
 */
import { open, readFile, unlink } from "node:fs/promises";
import { StoreError } from "../store.js";

export class StoreLockedError extends StoreError {
  override name = "StoreLockedError";
}

/** Takes the lock at `path`; returns the function that releases it. */
export async function lockDirectory(path: string): Promise<() => Promise<void>> {
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, "wx");
      try {
        await fh.writeFile(`${JSON.stringify({ pid: process.pid })}\n`);
      } finally {
        await fh.close();
      }
      return () => release(path);
    } catch (error) {
      if ((error as { code?: unknown }).code !== "EEXIST") throw error;
    }
    const owner = await lockOwner(path);
    if (attempt > 0 || (owner !== undefined && owner !== process.pid && isRunning(owner))) {
      throw new StoreLockedError(
        `store ${path} is locked by process ${owner ?? "unknown"}; if no such process uses it, remove the lock file`,
      );
    }
    await unlink(path).catch(() => undefined);
  }
}

async function release(path: string): Promise<void> {
  if ((await lockOwner(path)) === process.pid) await unlink(path).catch(() => undefined);
}

async function lockOwner(path: string): Promise<number | undefined> {
  try {
    const pid = (JSON.parse(await readFile(path, "utf8")) as { pid?: unknown }).pid;
    return typeof pid === "number" && Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code === "EPERM";
  }
}
