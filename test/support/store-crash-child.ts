/**
 * Child process for test/integration/store-crash.test.ts: opens a LowdbStore and runs concurrent commits until it
 * is killed. Usage: node --import=tsx test/support/store-crash-child.ts <dir> <seed>
 *
 * Protocol on stdout, one JSON object per line (stdout is a pipe, written synchronously on Linux, so a line the
 * parent reads was written before the kill):
 *   {"t":"opening"}                 about to open (and recover) the store
 *   {"t":"ready"}                   open
 *   {"t":"b","id":…,"m":[…]}        about to commit; m = [[key, "put", expectVersion, value] | [key, "del", expectVersion]]
 *   {"t":"a","id":…}                that commit resolved, so it is durable
 *   {"t":"f","id":…,"error":…}      that commit failed (the parent fails the test)
 * A key is never in two commits at once, so the parent can tell for each unacknowledged commit whether it landed.
 */
import { LowdbStore } from "../../daemon/src/store/lowdb/lowdb-store.js";
import type { JsonValue, Mutation } from "../../daemon/src/store/store.js";
import { sha256Sealer } from "./store-sealer.js";

type Planned = [key: string, op: "put", expectVersion: number, value: JsonValue] | [key: string, op: "del", expectVersion: number];

const WORKERS = 16;

function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** mulberry32: a small seeded generator, so each run's stream of operations is reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function main(): Promise<void> {
  const [dir, seedText] = process.argv.slice(2);
  if (dir === undefined || seedText === undefined) throw new Error("usage: store-crash-child.ts <dir> <seed>");
  const seed = Number(seedText);
  const random = rng(seed);
  emit({ t: "opening" });
  // A small checkpoint threshold, so kills also land during checkpoints and segment rotation.
  const store = await LowdbStore.open({ dir, sealer: sha256Sealer, shardCount: 8, checkpointMinBytes: 24 * 1024, checkpointDataRatio: 0 });
  const versions = new Map<string, number>();
  let startAfter: string | undefined;
  for (;;) {
    const page = await store.list("", startAfter === undefined ? { pageSize: 1000 } : { pageSize: 1000, startAfter });
    for (const r of page.records) versions.set(r.key, r.version);
    if (page.nextStartAfter === undefined) break;
    startAfter = page.nextStartAfter;
  }
  emit({ t: "ready" });

  const busy = new Set<string>();
  let next = 0;
  const pickIdle = (): string | undefined => {
    const keys = [...versions.keys()].filter((k) => !busy.has(k));
    return keys.length === 0 ? undefined : keys[Math.floor(random() * keys.length)];
  };

  const worker = async (): Promise<void> => {
    for (;;) {
      const id = `${seed}-${next++}`;
      const planned: Planned[] = [];
      const r = random();
      const existing = pickIdle();
      if (r < 0.5 || existing === undefined) {
        // Create 1–3 keys, sometimes together with an update of an existing one: multi-record atomicity.
        const n = 1 + Math.floor(random() * 3);
        for (let i = 0; i < n; i++) planned.push([`k/${id}/${i}`, "put", 0, { id, i, pad: "x".repeat(Math.floor(random() * 200)) }]);
        if (existing !== undefined && random() < 0.4) planned.push([existing, "put", versions.get(existing)!, { id, linked: true }]);
      } else if (r < 0.8) {
        planned.push([existing, "put", versions.get(existing)!, { id, updated: true }]);
      } else {
        planned.push([existing, "del", versions.get(existing)!]);
      }
      for (const [key] of planned) busy.add(key);
      const mutations: Mutation[] = planned.map((p) =>
        p[1] === "put" ? { op: "put", key: p[0], value: p[3], expectVersion: p[2] } : { op: "delete", key: p[0], expectVersion: p[2] },
      );
      emit({ t: "b", id, m: planned });
      try {
        await store.commit({ mutations, journal: [{ id }] });
      } catch (error) {
        emit({ t: "f", id, error: String(error) });
        throw error;
      }
      emit({ t: "a", id });
      for (const p of planned) {
        if (p[1] === "put") versions.set(p[0], p[2] + 1);
        else versions.delete(p[0]);
        busy.delete(p[0]);
      }
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
