/** Every file under a folder, and their SHA-256 digests: for tests that prove a refused operation changed no file. */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** SHA-256 of each file under `dir`, keyed by its path relative to `dir`, in path order. */
export function fileHashes(dir: string): Record<string, string> {
  return Object.fromEntries(filesUnder(dir).sort().map((f) => [f.slice(dir.length), createHash("sha256").update(readFileSync(f)).digest("hex")]));
}
