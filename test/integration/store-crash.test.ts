/**
 * kill -9 at random moments: a child process (test/support/store-crash-child.ts) commits concurrently into a
 * LowdbStore and reports each commit before and after; the parent SIGKILLs it after a random number of
 * acknowledgements (or while it opens), recovers the store and checks that
 *   - every acknowledged commit is there (puts with their values and versions, deletes absent),
 *   - every unacknowledged commit is there entirely or not at all,
 *   - nothing else changed, and
 *   - the journal chain verifies from the first line to the committed head, holding exactly the commits that landed.
 * Kill points are chosen by a seeded generator: the same counts every run, though where in the I/O they fall varies.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { LowdbStore } from "../../daemon/src/store/lowdb/lowdb-store.js";
import type { JsonValue } from "../../daemon/src/store/store.js";
import { sha256Sealer, verifySealedLines } from "../support/store-sealer.js";

const CHILD = fileURLToPath(new URL("../support/store-crash-child.ts", import.meta.url));
const RUNS = 22;

type Planned = [key: string, op: "put", expectVersion: number, value: JsonValue] | [key: string, op: "del", expectVersion: number];
interface Record_ {
  version: number;
  value: JsonValue;
}
type State = Map<string, Record_>;

/** The kill point of each run: while opening, right after opening, or after n acknowledgements. */
function killPlan(runs: number): ("opening" | "ready" | number)[] {
  let a = 0x5eed;
  const random = (): number => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return a / 4294967296;
  };
  return Array.from({ length: runs }, (_, i) => (i % 8 === 3 ? "opening" : i % 8 === 6 ? "ready" : 1 + Math.floor(random() * 300)));
}

interface RunLog {
  begun: Map<string, Planned[]>;
  acked: Set<string>;
}

/** Runs the child until the kill point, kills it with SIGKILL and returns what it reported. */
async function runChild(dir: string, seed: number, killAt: "opening" | "ready" | number): Promise<RunLog> {
  const child = spawn(process.execPath, ["--import=tsx", CHILD, dir, String(seed)], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const log: RunLog = { begun: new Map(), acked: new Set() };
  let killed = false;
  const kill = (): void => {
    if (!killed) child.kill("SIGKILL");
    killed = true;
  };
  for await (const line of createInterface({ input: child.stdout })) {
    const msg = JSON.parse(line) as { t: string; id?: string; m?: Planned[]; error?: string };
    if (msg.t === "b") log.begun.set(msg.id!, msg.m!);
    else if (msg.t === "a") log.acked.add(msg.id!);
    else if (msg.t === "f") throw new Error(`child commit ${msg.id} failed: ${msg.error}`);
    if (msg.t === killAt || (typeof killAt === "number" && log.acked.size >= killAt)) kill();
  }
  const { signal } = await exited;
  if (signal !== "SIGKILL") throw new Error(`child exited on its own (${signal ?? "no signal"}): ${stderr}`);
  return log;
}

function applyPlanned(state: State, planned: readonly Planned[]): void {
  for (const p of planned) {
    if (p[1] === "put") state.set(p[0], { version: p[2] + 1, value: p[3] });
    else state.delete(p[0]);
  }
}

async function readState(store: LowdbStore): Promise<State> {
  const state: State = new Map();
  let startAfter: string | undefined;
  for (;;) {
    const page = await store.list("", startAfter === undefined ? { pageSize: 1000 } : { pageSize: 1000, startAfter });
    for (const r of page.records) state.set(r.key, { version: r.version, value: r.value });
    if (page.nextStartAfter === undefined) return state;
    startAfter = page.nextStartAfter;
  }
}

test("lowdb store survives kill -9 at random moments", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "mcko-store-crash-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let model: State = new Map();
  let journalIds: string[] = [];
  let totalAcked = 0;
  let totalLanded = 0;

  for (const [run, killAt] of killPlan(RUNS).entries()) {
    const log = await runChild(dir, run, killAt);
    const store = await LowdbStore.open({ dir, sealer: sha256Sealer });
    try {
      const actual = await readState(store);
      // The state every acknowledged commit leaves (in begin order: a key's next commit begins after the last acked).
      const expected: State = new Map(model);
      const pending: [string, Planned[]][] = [];
      for (const [id, planned] of log.begun) {
        if (log.acked.has(id)) applyPlanned(expected, planned);
        else pending.push([id, planned]);
      }
      // Each unacknowledged commit touches keys no other commit touched since: it landed entirely or not at all.
      const landed = new Set<string>();
      for (const [id, planned] of pending) {
        const after: State = new Map();
        for (const [key] of planned) if (expected.has(key)) after.set(key, expected.get(key)!);
        applyPlanned(after, planned);
        const matchesBefore = planned.every(([key]) => sameRecord(actual.get(key), expected.get(key)));
        const matchesAfter = planned.every(([key]) => sameRecord(actual.get(key), after.get(key)));
        if (!matchesBefore && !matchesAfter) {
          t.fail(`run ${run}: commit ${id} is half-applied: ${JSON.stringify(planned.map(([k]) => [k, actual.get(k)]))}`);
        }
        if (matchesAfter && !matchesBefore) {
          landed.add(id);
          applyPlanned(expected, planned);
        }
      }
      t.deepEqual([...actual.entries()].sort(byKey), [...expected.entries()].sort(byKey), `run ${run} (kill at ${killAt})`);

      const head = await store.journalHead();
      const lines = await store.readJournal(1, head.seq);
      const { parsed, head: verified } = verifySealedLines(lines);
      t.deepEqual(verified, head, `run ${run}: the chain verifies up to the committed head`);
      const newIds = parsed.slice(journalIds.length).map((l) => l.entry["id"] as string);
      t.deepEqual(parsed.slice(0, journalIds.length).map((l) => l.entry["id"]), journalIds, `run ${run}: earlier journal kept`);
      t.deepEqual(new Set(newIds), new Set([...log.acked, ...landed]), `run ${run}: journal holds exactly the commits that landed`);
      t.is(newIds.length, log.acked.size + landed.size);

      model = actual;
      journalIds = parsed.map((l) => l.entry["id"] as string);
      totalAcked += log.acked.size;
      totalLanded += landed.size;
    } finally {
      await store.close();
    }
  }
  t.log(`${RUNS} kills, ${totalAcked} acknowledged commits, ${totalLanded} unacknowledged ones landed, ${model.size} records`);
  t.true(totalAcked > RUNS * 50, "the runs did real work");
});

function sameRecord(a: Record_ | undefined, b: Record_ | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.version === b.version && JSON.stringify(a.value) === JSON.stringify(b.value);
}

function byKey(a: [string, Record_], b: [string, Record_]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}
