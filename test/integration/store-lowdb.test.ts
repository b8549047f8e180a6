/**
 * LowdbStore: the Store contract on disk, plus durability and recovery. A "crash image" is a copy of the store's
 * directory taken while the store is open and idle: everything fsynced is in it, as after a kill -9.
 */
import test, { type ExecutionContext } from "ava";
import { appendFile, cp, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LowdbStore, type LowdbStoreOptions } from "../../daemon/src/store/lowdb/lowdb-store.js";
import type { FaultAction, FaultPoint, StoreFaults } from "../../daemon/src/store/lowdb/faults.js";
import { StoreLockedError } from "../../daemon/src/store/lowdb/dir-lock.js";
import { StoreCorruptError, StoreIoError, type Mutation } from "../../daemon/src/store/store.js";
import { snapshotStore, storeContract } from "../contract/store.js";
import { sha256Sealer, verifySealedLines } from "../support/store-sealer.js";

async function tempDir(t: ExecutionContext<unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mcko-store-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function openStore(t: ExecutionContext<unknown>, options: LowdbStoreOptions): Promise<LowdbStore> {
  const store = await LowdbStore.open(options);
  t.teardown(() => store.close());
  return store;
}

/** A copy of `dir` as a crash would leave it (the store must be idle). */
async function crashImage(t: ExecutionContext<unknown>, dir: string): Promise<string> {
  const copy = await tempDir(t);
  await cp(dir, copy, { recursive: true });
  return copy;
}

/** Fails the named steps once each, in the order given. */
class ScriptedFaults implements StoreFaults {
  readonly #plan: { point: FaultPoint; action: FaultAction }[] = [];
  fail(point: FaultPoint, action: FaultAction = "fail"): this {
    this.#plan.push({ point, action });
    return this;
  }
  inject(point: FaultPoint): FaultAction | undefined {
    const i = this.#plan.findIndex((p) => p.point === point);
    if (i < 0) return undefined;
    return this.#plan.splice(i, 1)[0]!.action;
  }
  get pending(): number {
    return this.#plan.length;
  }
}

const put = (key: string, value: unknown, expectVersion?: number): Mutation =>
  ({ op: "put", key, value, ...(expectVersion === undefined ? {} : { expectVersion }) }) as Mutation;

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(join(dir, "wal"))).filter((n) => n.endsWith(".wal")).sort();
}

storeContract(test, async (t, options) => openStore(t, { dir: await tempDir(t), shardCount: 16, ...options }));

test("lowdb: everything committed survives close and reopen, with the default shard count", async (t) => {
  const dir = await tempDir(t);
  const store = await LowdbStore.open({ dir, sealer: sha256Sealer });
  for (let i = 0; i < 20; i++) {
    await store.commit({
      mutations: Array.from({ length: 50 }, (_, j) => put(`r/${i}/${j}`, { i, j, s: "x".repeat(j) })),
      journal: [{ batch: i }],
    });
  }
  await store.commit({ mutations: [put("r/0/0", "updated", 1), { op: "delete", key: "r/1/1", expectVersion: 1 }] });
  const before = await snapshotStore(store);
  t.is(before.records.length, 999);
  await store.close();
  const reopened = await openStore(t, { dir, sealer: sha256Sealer });
  t.deepEqual(await snapshotStore(reopened), before);
  t.is(reopened.stats().shardCount, 512);
  t.deepEqual(await reopened.get("r/0/0"), { key: "r/0/0", version: 2, value: "updated" });
  t.deepEqual(verifySealedLines(before.journal).head, before.head);
});

test("lowdb: awkward keys and values survive the WAL and the shard files", async (t) => {
  const dir = await tempDir(t);
  const awkward = ['a"b', "a\\b", 'x":{"version":1,"value":2}', "lone\ud800", "emoji😀", "nl\nkey", ",\n", "é", " "];
  const mutations = awkward.map((key, i) => put(key, { key, text: `${key},\n}}`, n: [i, -0.5, 1e300], nested: { [key]: null } }));
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 4 });
  await store.commit({ mutations, journal: [{ text: 'quote " backslash \\ newline \n' }] });
  const before = await snapshotStore(store);
  // From the WAL alone (a crash image), then from the shard files alone (after the closing checkpoint).
  t.deepEqual(await snapshotStore(await openStore(t, { dir: await crashImage(t, dir), sealer: sha256Sealer })), before);
  await store.close();
  t.is((await segmentFiles(dir)).length, 1);
  const reopened = await openStore(t, { dir, sealer: sha256Sealer });
  t.deepEqual(await snapshotStore(reopened), before);
  for (const key of awkward) t.is((await reopened.get<{ key: string }>(key))?.value.key, key);
});

test("lowdb: a crash image holds every resolved commit (no close, no checkpoint)", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8 });
  await Promise.all(
    Array.from({ length: 100 }, (_, i) => store.commit({ mutations: [put(`c/${i}`, i, 0)], journal: [{ i }] })),
  );
  const before = await snapshotStore(store);
  t.is(store.stats().checkpoints, 0);
  const image = await crashImage(t, dir);
  t.deepEqual((await readdir(join(image, "shards"))).length, 0, "nothing checkpointed: all from the WAL");
  const recovered = await openStore(t, { dir: image, sealer: sha256Sealer });
  t.deepEqual(await snapshotStore(recovered), before);
});

test("lowdb: what recovery replayed from the WAL is kept by the next checkpoint", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8 });
  await store.commit({ mutations: Array.from({ length: 30 }, (_, i) => put(`w/${i}`, i)), journal: [{ e: 1 }] });
  const before = await snapshotStore(store);
  const image = await crashImage(t, dir);
  // Recover, then close: the closing checkpoint must write the replayed shards before it drops the segment.
  await (await LowdbStore.open({ dir: image, sealer: sha256Sealer })).close();
  t.is((await segmentFiles(image)).length, 1);
  t.deepEqual(await snapshotStore(await openStore(t, { dir: image, sealer: sha256Sealer })), before);
});

test("lowdb: a torn last WAL record is cut off and its journal lines are moved aside", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8 });
  await store.commit({ mutations: [put("t/a", "a")], journal: [{ e: "a" }] });
  const committed = await snapshotStore(store);
  await store.commit({ mutations: [put("t/b", "b"), put("t/c", "c")], journal: [{ e: "b" }, { e: "c" }] });
  const image = await crashImage(t, dir);
  const [segment] = await segmentFiles(image);
  const walPath = join(image, "wal", segment!);
  const walBytes = (await stat(walPath)).size;
  await truncate(walPath, walBytes - 20); // the second record loses its end

  const recovered = await openStore(t, { dir: image, sealer: sha256Sealer });
  t.deepEqual(await snapshotStore(recovered), committed);
  t.is((await stat(walPath)).size < walBytes - 20, true, "torn bytes removed from the WAL");
  const rolledBack = (await readFile(join(image, "audit.rolledback.jsonl"), "utf8")).trim().split("\n");
  t.deepEqual(
    rolledBack.map((l) => (JSON.parse(l) as { entry: unknown }).entry),
    [{ e: "b" }, { e: "c" }],
  );
  // The chain goes on from the committed head.
  const r = await recovered.commit({ mutations: [put("t/d", "d")], journal: [{ e: "d" }] });
  t.is(r.journalHead.seq, 2);
  const { parsed, head } = verifySealedLines(await recovered.readJournal(1, 10));
  t.deepEqual(parsed.map((l) => l.entry), [{ e: "a" }, { e: "d" }]);
  t.deepEqual(head, r.journalHead);
});

test("lowdb: journal lines past the committed head (crash before the WAL record) are rolled back", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8 });
  await store.commit({ mutations: [put("u/a", 1)], journal: [{ e: 1 }, { e: 2 }] });
  const committed = await snapshotStore(store);
  const image = await crashImage(t, dir);
  // What step 1 of a commit leaves when the process dies before step 2: sealed lines, plus a torn one.
  const uncommitted = sha256Sealer.seal([{ e: 3 }, { e: 4 }], committed.head as never).lines;
  await appendFile(join(image, "audit.jsonl"), `${uncommitted.join("\n")}\n${uncommitted[0]!.slice(0, 15)}`);

  const recovered = await openStore(t, { dir: image, sealer: sha256Sealer });
  t.deepEqual(await snapshotStore(recovered), committed);
  t.is((await readFile(join(image, "audit.jsonl"), "utf8")).trim().split("\n").length, 2);
  const evidence = await readFile(join(image, "audit.rolledback.jsonl"), "utf8");
  t.true(evidence.startsWith(`${uncommitted.join("\n")}\n`));
  t.true(evidence.endsWith("\n"));
});

test("lowdb: journal lines of the commits still in the WAL, lost or zero-filled before a checkpoint flushed them, are rewritten from the WAL", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8 });
  await store.commit({ mutations: [put("l/1", 1)], journal: [{ e: 1 }, { e: 2 }] });
  await store.checkpoint(); // the journal is flushed; these lines leave the WAL
  await store.commit({ mutations: [put("l/2", 2)], journal: [{ e: 3 }, { e: 4 }] });
  await store.commit({ mutations: [put("l/3", 3)], journal: [{ e: 5 }] });
  const before = await snapshotStore(store);
  const text = await readFile(join(dir, "audit.jsonl"), "utf8");
  const flushed = `${before.journal[0]}\n${before.journal[1]}\n`.length;

  // The WAL records reached the disk, the journal's bytes of both later commits only partly.
  const short = await crashImage(t, dir);
  await writeFile(join(short, "audit.jsonl"), text.slice(0, flushed + 10));
  t.deepEqual(await snapshotStore(await openStore(t, { dir: short, sealer: sha256Sealer })), before);
  t.is(await readFile(join(short, "audit.jsonl"), "utf8"), text);

  // The file's size reached the disk but its last blocks did not: zeros where the lines belong.
  const zeroed = await crashImage(t, dir);
  const bytes = Buffer.from(text, "utf8");
  bytes.fill(0, flushed + 3);
  await writeFile(join(zeroed, "audit.jsonl"), bytes);
  t.deepEqual(await snapshotStore(await openStore(t, { dir: zeroed, sealer: sha256Sealer })), before);
  t.is(await readFile(join(zeroed, "audit.jsonl"), "utf8"), text);
});

test("lowdb: a journal missing or altering committed lines is StoreCorruptError, not repaired", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8 });
  await store.commit({ mutations: [], journal: [{ e: 1 }, { e: 2 }, { e: 3 }] });
  await store.checkpoint(); // lines 1-3 are now only in the journal file
  await store.commit({ mutations: [], journal: [{ e: 4 }] });
  const image = await crashImage(t, dir);
  const journal = join(image, "audit.jsonl");
  const lines = (await readFile(journal, "utf8")).split("\n");
  await writeFile(journal, `${lines.slice(0, 2).join("\n")}\n`);
  await t.throwsAsync(LowdbStore.open({ dir: image, sealer: sha256Sealer }), { instanceOf: StoreCorruptError, message: /truncated/ });
  await rm(journal);
  await t.throwsAsync(LowdbStore.open({ dir: image, sealer: sha256Sealer }), { instanceOf: StoreCorruptError, message: /missing/ });
  // A line changed before the WAL's lines no longer splits into the committed number of lines.
  const edited = await crashImage(t, dir);
  const editedJournal = join(edited, "audit.jsonl");
  await writeFile(editedJournal, (await readFile(editedJournal, "utf8")).replace("\n", " "));
  await t.throwsAsync(LowdbStore.open({ dir: edited, sealer: sha256Sealer }), { instanceOf: StoreCorruptError, message: /lines/ });
  // A line changed among the WAL's lines is not a crash's doing either: it is not overwritten from the WAL.
  const altered = await crashImage(t, dir);
  const alteredJournal = join(altered, "audit.jsonl");
  const alteredText = await readFile(alteredJournal, "utf8");
  const at = alteredText.lastIndexOf('"e":4');
  await writeFile(alteredJournal, `${alteredText.slice(0, at)}"e":5${alteredText.slice(at + 5)}`);
  await t.throwsAsync(LowdbStore.open({ dir: altered, sealer: sha256Sealer }), { instanceOf: StoreCorruptError, message: /altered outside the store/ });
  t.is(await readFile(alteredJournal, "utf8"), `${alteredText.slice(0, at)}"e":5${alteredText.slice(at + 5)}`, "the evidence is left as found");
});

test("lowdb: a journal flush failing at a checkpoint keeps the WAL segments that hold its lines", async (t) => {
  const dir = await tempDir(t);
  const faults = new ScriptedFaults().fail("journal-sync");
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8, faults });
  await store.commit({ mutations: [put("j/1", 1)], journal: [{ e: 1 }] });
  const segments = await segmentFiles(dir);
  await store.checkpoint();
  t.is(faults.pending, 0, "the fault was hit");
  t.truthy(store.stats().checkpointError, "the checkpoint reports the failure");
  t.true((await segmentFiles(dir)).includes(segments[0]!), "the segment with the unflushed lines is kept");
  const before = await snapshotStore(store);
  // Lost journal bytes are still recoverable from the kept segment.
  const image = await crashImage(t, dir);
  await writeFile(join(image, "audit.jsonl"), "");
  t.deepEqual(await snapshotStore(await openStore(t, { dir: image, sealer: sha256Sealer })), before);
  // The next checkpoint flushes and drops it.
  await store.commit({ mutations: [put("j/2", 2)], journal: [{ e: 2 }] });
  await store.checkpoint();
  t.is(store.stats().checkpointError, undefined);
  t.false((await segmentFiles(dir)).includes(segments[0]!));
});

test("lowdb: damage a crash cannot explain is StoreCorruptError", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8 });
  await store.commit({ mutations: [put("d/1", 1)] });
  await store.commit({ mutations: [put("d/2", 2)] });

  // A bad record followed by a good one.
  const flipped = await crashImage(t, dir);
  const [segment] = await segmentFiles(flipped);
  const walPath = join(flipped, "wal", segment!);
  const lines = (await readFile(walPath, "utf8")).split("\n");
  lines[1] = lines[1]!.replace('"d/1"', '"d/X"');
  await writeFile(walPath, lines.join("\n"));
  await t.throwsAsync(LowdbStore.open({ dir: flipped }), { instanceOf: StoreCorruptError, message: /damaged/ });

  // A shard file whose record text changed (bit rot, a hand edit): its checksum no longer matches.
  const rotten = await crashImage(t, dir);
  const rottenStore = await LowdbStore.open({ dir: rotten });
  await rottenStore.close(); // checkpoint: the records are now in shard files
  const [shardFile] = (await readdir(join(rotten, "shards"))).filter((n) => n.endsWith(".json"));
  const shardText = await readFile(join(rotten, "shards", shardFile!), "utf8");
  await writeFile(join(rotten, "shards", shardFile!), shardText.replace(/"version":1/, '"version":7'));
  await t.throwsAsync(LowdbStore.open({ dir: rotten }), { instanceOf: StoreCorruptError, message: /checksum/ });

  // Store files without store.json.
  const noMeta = await crashImage(t, dir);
  await rm(join(noMeta, "store.json"));
  await t.throwsAsync(LowdbStore.open({ dir: noMeta }), { instanceOf: StoreCorruptError, message: /store\.json/ });
});

const commitFaults: { point: FaultPoint; action: FaultAction }[] = [
  { point: "journal-write", action: "fail" },
  { point: "journal-write", action: "partial" },
  { point: "wal-write", action: "fail" },
  { point: "wal-write", action: "partial" },
  { point: "wal-sync", action: "fail" },
];

for (const { point, action } of commitFaults) {
  test(`lowdb: an I/O failure at ${point} (${action}) rejects the commit and changes nothing, also after reopen`, async (t) => {
    const dir = await tempDir(t);
    const faults = new ScriptedFaults();
    const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8, faults });
    await store.commit({ mutations: [put("f/a", "a1"), put("f/b", "b1")], journal: [{ e: "setup" }] });
    const before = await snapshotStore(store);

    faults.fail(point, action);
    // Two commits in one group: both fail with the group's write.
    const failed = await Promise.allSettled([
      store.commit({ mutations: [put("f/a", "a2", 1), put("f/c", "c1", 0)], journal: [{ e: "lost-1" }] }),
      store.commit({ mutations: [{ op: "delete", key: "f/b" }], journal: [{ e: "lost-2" }] }),
    ]);
    t.is(faults.pending, 0, "the fault was hit");
    for (const outcome of failed) {
      t.is(outcome.status, "rejected");
      if (outcome.status === "rejected") t.true(outcome.reason instanceof StoreIoError);
    }
    t.deepEqual(await snapshotStore(store), before);

    // What a crash right now would leave holds nothing of the failed commits either.
    const image = await crashImage(t, dir);
    const recovered = await openStore(t, { dir: image, sealer: sha256Sealer });
    t.deepEqual(await snapshotStore(recovered), before);

    // The store goes on: the next commit lands and the chain is contiguous.
    const ok = await store.commit({ mutations: [put("f/a", "a2", 1)], journal: [{ e: "after" }] });
    t.is(ok.journalHead.seq, 2);
    await store.close();
    const reopened = await openStore(t, { dir, sealer: sha256Sealer });
    const after = await snapshotStore(reopened);
    t.deepEqual(after.records, [
      ["f/a", 2, "a2"],
      ["f/b", 1, "b1"],
    ]);
    t.deepEqual(verifySealedLines(after.journal).parsed.map((l) => l.entry), [{ e: "setup" }, { e: "after" }]);
  });
}

test("lowdb: when a failed commit cannot be cut off, the store refuses further commits", async (t) => {
  const dir = await tempDir(t);
  const faults = new ScriptedFaults().fail("wal-sync").fail("wal-rollback");
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8, faults });
  await t.throwsAsync(store.commit({ mutations: [put("p/a", 1)], journal: [{ e: 1 }] }), { instanceOf: StoreIoError });
  const refused = await t.throwsAsync(store.commit({ mutations: [put("p/b", 1)] }), { instanceOf: StoreIoError });
  t.regex(refused.message, /refuses/);
  t.is(await store.get("p/a"), undefined);
  t.is(await store.get("p/b"), undefined);
});

test("lowdb: checkpoints rewrite shards and drop old WAL segments; state survives reopen", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 16, checkpointMinBytes: 16 * 1024, checkpointDataRatio: 0 });
  for (let i = 0; i < 300; i++) {
    const mutations = [put(`k/${i % 120}`, { i, pad: "p".repeat(100) })];
    if (i % 7 === 0) mutations.push({ op: "delete", key: `k/${(i + 60) % 120}` });
    await store.commit({ mutations, journal: [{ i }] });
  }
  await store.checkpoint();
  const stats = store.stats();
  t.true(stats.checkpoints >= 3, `checkpoints: ${stats.checkpoints}`);
  t.is(stats.checkpointError, undefined);
  t.is((await segmentFiles(dir)).length, 1, "only the active segment is left");
  const before = await snapshotStore(store);
  // A crash image right after a checkpoint loads from the shards.
  const recovered = await openStore(t, { dir: await crashImage(t, dir), sealer: sha256Sealer });
  t.deepEqual(await snapshotStore(recovered), before);
  t.is(before.head && (before.head as { seq: number }).seq, 300);
});

test("lowdb: a failed checkpoint keeps the WAL; the next one catches up", async (t) => {
  const dir = await tempDir(t);
  const faults = new ScriptedFaults();
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 4, faults });
  await store.commit({ mutations: Array.from({ length: 40 }, (_, i) => put(`cp/${i}`, i)), journal: [{ e: 1 }] });
  faults.fail("checkpoint");
  await store.checkpoint();
  t.truthy(store.stats().checkpointError);
  t.is((await segmentFiles(dir)).length, 2, "the old segment stays until a checkpoint completes");
  await store.commit({ mutations: [put("cp/40", 40)] });
  const before = await snapshotStore(store);
  t.deepEqual(await snapshotStore(await openStore(t, { dir: await crashImage(t, dir), sealer: sha256Sealer })), before);
  await store.checkpoint();
  t.is(store.stats().checkpointError, undefined);
  t.is((await segmentFiles(dir)).length, 1);
  t.is((await readdir(join(dir, "shards"))).length, 4);
  t.deepEqual(await snapshotStore(await openStore(t, { dir: await crashImage(t, dir), sealer: sha256Sealer })), before);
});

test("lowdb: the internal store (no sealer) has no journal file and reopens", async (t) => {
  const dir = await tempDir(t);
  const store = await LowdbStore.open({ dir, shardCount: 4 });
  await store.commit({ mutations: [put("internal/audit-key", { wrapped: "AAAA" })] });
  await store.close();
  t.false((await readdir(dir)).some((n) => n.startsWith("audit")));
  const reopened = await openStore(t, { dir });
  t.deepEqual(await reopened.get("internal/audit-key"), { key: "internal/audit-key", version: 1, value: { wrapped: "AAAA" } });
});

test("lowdb: an existing store keeps its shard count; leftover temp files are removed", async (t) => {
  const dir = await tempDir(t);
  const store = await LowdbStore.open({ dir, shardCount: 4 });
  await store.commit({ mutations: Array.from({ length: 20 }, (_, i) => put(`s/${i}`, i)) });
  await store.close();
  await writeFile(join(dir, "shards", ".00001.json.tmp"), "half a shard");
  await writeFile(join(dir, ".store.json.tmp"), "{");
  const reopened = await openStore(t, { dir, shardCount: 64 });
  t.is(reopened.stats().shardCount, 4);
  t.is(await reopened.count("s/"), 20);
  t.false((await readdir(join(dir, "shards"))).some((n) => n.endsWith(".tmp")));
  t.false((await readdir(dir)).some((n) => n.endsWith(".tmp")));
});

test("lowdb: by default a checkpoint waits for 64 KiB of WAL per shard of the store as created", async (t) => {
  const small = await tempDir(t);
  await (await LowdbStore.open({ dir: small, shardCount: 4 })).close();
  // A reopen names another shard count: the store keeps its 4 shards, and the threshold follows them.
  const reopened = await openStore(t, { dir: small, shardCount: 64 });
  t.is(reopened.stats().checkpointThresholdBytes, 4 * 64 * 1024);
  const byDefault = await openStore(t, { dir: await tempDir(t) });
  t.is(byDefault.stats().shardCount, 512);
  t.is(byDefault.stats().checkpointThresholdBytes, 32 * 1024 * 1024);
});

test("lowdb: a store open in another running process is refused; a stale lock is taken over", async (t) => {
  const dir = await tempDir(t);
  await (await LowdbStore.open({ dir })).close();
  t.false((await readdir(dir)).includes("store.lock"), "close releases the lock");
  // ava's main process is alive and is not this worker.
  await writeFile(join(dir, "store.lock"), JSON.stringify({ pid: process.ppid }));
  await t.throwsAsync(LowdbStore.open({ dir }), { instanceOf: StoreLockedError, message: new RegExp(`process ${process.ppid}`) });
  // No process has this pid (above pid_max): the lock is stale, as after a kill -9.
  await writeFile(join(dir, "store.lock"), JSON.stringify({ pid: 2_000_000_000 }));
  const store = await openStore(t, { dir });
  t.is(JSON.parse(await readFile(join(dir, "store.lock"), "utf8")).pid, process.pid);
  await store.close();
});

/** Byte ranges of a WAL segment's records (each without its newline). */
function recordRanges(data: Buffer): { start: number; end: number }[] {
  const ranges: { start: number; end: number }[] = [];
  for (let start = 0; start < data.length; ) {
    const nl = data.indexOf(0x0a, start);
    if (nl < 0) break;
    ranges.push({ start, end: nl });
    start = nl + 1;
  }
  return ranges;
}

test("lowdb: a crash while two pipelined commits were flushing (the second's record whole, part of the first's never written) recovers to the state before both", async (t) => {
  const dir = await tempDir(t);
  const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8 });
  await store.commit({ mutations: [put("p/1", 1)], journal: [{ e: 1 }] });
  const before = await snapshotStore(store);
  await store.commit({ mutations: [put("p/2", 2)], journal: [{ e: 2 }] });
  await store.commit({ mutations: [put("p/3", 3)], journal: [{ e: 3 }] });
  /** A crash image whose segment (header, commits 1–3) is changed by `damage`. */
  const imageWith = async (damage: (data: Buffer, records: { start: number; end: number }[]) => Buffer): Promise<string> => {
    const image = await crashImage(t, dir);
    const [segment] = await segmentFiles(image);
    const walPath = join(image, "wal", segment!);
    const data = await readFile(walPath);
    const records = recordRanges(data);
    t.is(records.length, 4, "header and three commits");
    await writeFile(walPath, damage(data, records));
    return image;
  };

  // Commit 2's middle pages never written (zeros), commit 3 whole after it: neither was acknowledged.
  const torn = await imageWith((data, r) => data.fill(0, r[2]!.start + 8, r[2]!.end - 8));
  const recovered = await openStore(t, { dir: torn, sealer: sha256Sealer });
  t.deepEqual(await snapshotStore(recovered), before);
  const aside = await readFile(join(torn, "audit.rolledback.jsonl"), "utf8");
  t.true(aside.includes('"e":2') && aside.includes('"e":3'), "their journal lines are moved aside, not lost");
  const next = await recovered.commit({ mutations: [put("p/4", 4)], journal: [{ e: 4 }] });
  t.is(next.journalHead.seq, 2);
  await recovered.close();
  const reopened = await openStore(t, { dir: torn, sealer: sha256Sealer });
  t.deepEqual(verifySealedLines((await snapshotStore(reopened)).journal).parsed.map((l) => l.entry), [{ e: 1 }, { e: 4 }]);

  // What a crash cannot explain stays StoreCorruptError: the torn record altered rather than unwritten…
  const edited = await imageWith((data, r) => {
    const text = data.toString("latin1");
    const at = text.indexOf('"p/2"', r[2]!.start);
    return Buffer.from(`${text.slice(0, at)}"p/X"${text.slice(at + 5)}`, "latin1");
  });
  await t.throwsAsync(LowdbStore.open({ dir: edited, sealer: sha256Sealer }), { instanceOf: StoreCorruptError, message: /valid records follow an invalid one/ });
  // …two whole records after a torn one (only one can be in flight behind it)…
  const twoAfter = await imageWith((data, r) => data.fill(0, r[1]!.start + 8, r[1]!.end - 8));
  await t.throwsAsync(LowdbStore.open({ dir: twoAfter, sealer: sha256Sealer }), { instanceOf: StoreCorruptError, message: /valid records follow an invalid one/ });
  // …and a whole record that is not the commit right after the torn one.
  const skipped = await imageWith((data, r) => Buffer.concat([data.subarray(0, r[1]!.start), Buffer.alloc(r[1]!.end - r[1]!.start, 0), Buffer.from("\n"), data.subarray(r[3]!.start)]));
  await t.throwsAsync(LowdbStore.open({ dir: skipped, sealer: sha256Sealer }), { instanceOf: StoreCorruptError, message: /valid records follow an invalid one/ });
});

test("lowdb: a flush that fails after the next commit was written behind it fails both; neither survives, and the store goes on", async (t) => {
  let cascades = 0;
  for (let trial = 0; trial < 10; trial++) {
    const dir = await tempDir(t);
    const faults = new ScriptedFaults();
    const store = await openStore(t, { dir, sealer: sha256Sealer, shardCount: 8, faults });
    await store.commit({ mutations: [put("s/0", 0)], journal: [{ e: 0 }] });
    faults.fail("wal-sync", "late");
    const a = store.commit({ mutations: [put("s/a", 1)], journal: [{ e: "a" }] });
    await new Promise((resolve) => setImmediate(resolve));
    const b = store.commit({ mutations: [put("s/b", 1)], journal: [{ e: "b" }] });
    const [ra, rb] = await Promise.allSettled([a, b]);
    t.is(faults.pending, 0, "the fault was hit");
    t.true(ra.status === "rejected" && ra.reason instanceof StoreIoError, "the commit whose flush failed is rejected");
    if (rb.status === "rejected") {
      t.true(rb.reason instanceof StoreIoError);
      if (/earlier commit/.test((rb.reason as Error).message)) cascades++;
    }
    const expected = [["s/0", 1, 0], ...(rb.status === "fulfilled" ? [["s/b", 1, 1]] : [])];
    const entries = [{ e: 0 }, ...(rb.status === "fulfilled" ? [{ e: "b" }] : [])];
    const check = async (s: LowdbStore, what: string) => {
      const snap = await snapshotStore(s);
      t.deepEqual(snap.records, expected, `${what}: records`);
      t.deepEqual(verifySealedLines(snap.journal).parsed.map((l) => l.entry), entries, `${what}: journal`);
    };
    await check(store, "live");
    await check(await openStore(t, { dir: await crashImage(t, dir), sealer: sha256Sealer }), "after a crash now");
    const c = await store.commit({ mutations: [put("s/c", 1)], journal: [{ e: "c" }] });
    t.is(c.journalHead.seq, entries.length + 1, "the chain goes on from the last committed line");
    await store.close();
  }
  t.log(`${cascades} of 10 trials had the second commit written behind the failing flush`);
  t.true(cascades > 0, "the pipelined path was exercised");
});
