/**
 * CommitEngine with a controllable persister: grouping, what is visible before and after the persist resolves,
 * a failed persist rejecting its whole group without touching state, and the pipeline of two groups in flight.
 */
import test from "ava";
import { CommitEngine, type CommitPersister, type PersistBatch } from "../../../daemon/src/store/memory/commit-engine.js";
import { RecordTable } from "../../../daemon/src/store/memory/record-table.js";
import { EMPTY_JOURNAL_HEAD, StoreConflictError, StoreIoError } from "../../../daemon/src/store/store.js";
import { sha256Sealer, verifySealedLines } from "../../support/store-sealer.js";

/** Holds every persist until the test releases it. */
class GatedPersister implements CommitPersister {
  readonly batches: PersistBatch[] = [];
  #gates: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #waiters: (() => void)[] = [];

  persist(batch: PersistBatch): Promise<void> {
    this.batches.push(batch);
    for (const w of this.#waiters.splice(0)) w();
    return new Promise((resolve, reject) => this.#gates.push({ resolve, reject }));
  }

  /** Resolves once `n` batches have been handed over. */
  async handedOver(n: number): Promise<void> {
    while (this.batches.length < n) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Resolves the oldest persist not yet settled, or the `index`th of those. */
  release(index = 0): void {
    this.#gates.splice(index, 1)[0]!.resolve();
  }

  fail(error: unknown, index = 0): void {
    this.#gates.splice(index, 1)[0]!.reject(error);
  }
}

function setup() {
  const table = new RecordTable(4);
  const persister = new GatedPersister();
  const engine = new CommitEngine({ table, sealer: sha256Sealer, persister, head: EMPTY_JOURNAL_HEAD });
  return { table, persister, engine };
}

test("commits queued while a group is being persisted form the next group, in call order", async (t) => {
  const { table, persister, engine } = setup();
  const first = engine.commit({ mutations: [{ op: "put", key: "a", value: 1 }], journal: [{ n: 1 }] });
  await persister.handedOver(1);
  const rest = [2, 3, 4].map((n) => engine.commit({ mutations: [{ op: "put", key: "a", value: n }], journal: [{ n }] }));
  // Not durable yet: not visible either.
  t.is(table.get("a"), undefined);
  t.deepEqual(engine.head, EMPTY_JOURNAL_HEAD);
  persister.release();
  t.is((await first).versions.get("a"), 1);
  await persister.handedOver(2);
  t.is(persister.batches.length, 2);
  const group = persister.batches[1]!;
  t.deepEqual(
    group.ops.map((op) => (op.kind === "put" ? [op.key, op.version, op.json] : [op.key])),
    [
      ["a", 2, "2"],
      ["a", 3, "3"],
      ["a", 4, "4"],
    ],
  );
  t.is(group.journalLines.length, 3);
  t.is(table.get("a")?.version, 1);
  persister.release();
  const results = await Promise.all(rest);
  t.deepEqual(results.map((r) => [r.versions.get("a"), r.journalHead.seq]), [[2, 2], [3, 3], [4, 4]]);
  t.deepEqual(table.get("a"), { key: "a", version: 4, value: 4 });
  const lines = persister.batches.flatMap((b) => b.journalLines);
  t.deepEqual(verifySealedLines(lines).head, engine.head);
});

test("a failed persist rejects every member of its group and leaves state and head as they were", async (t) => {
  const { table, persister, engine } = setup();
  const setupCommit = engine.commit({ mutations: [{ op: "put", key: "k", value: "v1" }], journal: [{ n: 0 }] });
  await persister.handedOver(1);
  persister.release();
  await setupCommit;
  const head = engine.head;

  const group = [
    engine.commit({ mutations: [{ op: "put", key: "k", value: "v2", expectVersion: 1 }], journal: [{ n: 1 }] }),
    engine.commit({ mutations: [{ op: "put", key: "k", value: "x", expectVersion: 9 }] }), // fails its check alone
    engine.commit({ mutations: [{ op: "put", key: "other", value: 1 }], journal: [{ n: 2 }] }),
  ];
  await persister.handedOver(2);
  t.is(persister.batches[1]!.ops.length, 2, "the conflicting request is not in the batch");
  persister.fail(new Error("EIO"));
  const outcomes = await Promise.allSettled(group);
  t.true(outcomes[0]?.status === "rejected" && outcomes[0].reason instanceof StoreIoError);
  t.true(outcomes[1]?.status === "rejected" && outcomes[1].reason instanceof StoreConflictError);
  t.true(outcomes[2]?.status === "rejected" && outcomes[2].reason instanceof StoreIoError);
  t.deepEqual(table.get("k"), { key: "k", version: 1, value: "v1" });
  t.is(table.get("other"), undefined);
  t.deepEqual(engine.head, head);

  // The next commit seals from the unchanged head again (the sealer keeps no state).
  const next = engine.commit({ mutations: [], journal: [{ n: 3 }] });
  await persister.handedOver(3);
  t.deepEqual(verifySealedLines(persister.batches[2]!.journalLines, head).parsed.map((l) => l.entry), [{ n: 3 }]);
  persister.release();
  t.is((await next).journalHead.seq, 2);
});

test("a sealer that breaks the line-per-seq rule fails only its own commit", async (t) => {
  const table = new RecordTable(1);
  const persister = new GatedPersister();
  const engine = new CommitEngine({
    table,
    persister,
    head: EMPTY_JOURNAL_HEAD,
    sealer: {
      seal: (entries, prev) =>
        entries.some((e) => e["bad"] === true)
          ? { lines: ["one\ntwo"], head: { seq: prev.seq + 1, hash: "h", signature: "s" } }
          : sha256Sealer.seal(entries, prev),
    },
  });
  const bad = engine.commit({ mutations: [{ op: "put", key: "b", value: 1 }], journal: [{ bad: true }] });
  const good = engine.commit({ mutations: [{ op: "put", key: "g", value: 1 }], journal: [{ bad: false }] });
  await persister.handedOver(1);
  persister.release();
  await t.throwsAsync(bad, { message: /single line/ });
  t.is((await good).journalHead.seq, 1);
  t.is(table.get("b"), undefined);
});

test("pipeline: a group queued while one is in flight is handed over at once, checked against it, and applied after it", async (t) => {
  const { table, persister, engine } = setup();
  const a = engine.commit({ mutations: [{ op: "put", key: "k", value: "a", expectVersion: 0 }], journal: [{ n: 1 }] });
  await persister.handedOver(1);
  const b = engine.commit({ mutations: [{ op: "put", key: "k", value: "b", expectVersion: 1 }], journal: [{ n: 2 }] });
  await persister.handedOver(2);
  const second = persister.batches[1]!;
  t.deepEqual(second.ops, [{ kind: "put", key: "k", version: 2, json: '"b"' }], "checked against the group in flight");
  t.deepEqual(verifySealedLines([...persister.batches[0]!.journalLines, ...second.journalLines]).parsed.map((l) => l.entry), [{ n: 1 }, { n: 2 }], "sealed after its lines");
  // A third commit waits: two groups are in flight.
  const c = engine.commit({ mutations: [{ op: "put", key: "k", value: "c", expectVersion: 2 }] });
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(persister.batches.length, 2);
  // The second group's persist finishing first changes nothing visible: it applies after the first.
  persister.release(1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(table.get("k"), undefined);
  t.deepEqual(engine.head, EMPTY_JOURNAL_HEAD);
  persister.release(0);
  t.is((await a).versions.get("k"), 1);
  t.is((await b).versions.get("k"), 2);
  t.deepEqual(table.get("k"), { key: "k", version: 2, value: "b" });
  t.is(engine.head.seq, 2);
  await persister.handedOver(3);
  persister.release();
  t.is((await c).versions.get("k"), 3);
});

test("pipeline: a failed group fails the group checked against it, state and head stay, and the next commit starts afresh", async (t) => {
  const { table, persister, engine } = setup();
  const a = engine.commit({ mutations: [{ op: "put", key: "k", value: "a" }], journal: [{ n: 1 }] });
  await persister.handedOver(1);
  const b = engine.commit({ mutations: [{ op: "put", key: "k", value: "b", expectVersion: 1 }], journal: [{ n: 2 }] });
  await persister.handedOver(2);
  persister.fail(new Error("EIO"), 0);
  await t.throwsAsync(a, { instanceOf: StoreIoError });
  // Nothing new starts while the doomed group is in flight.
  const c = engine.commit({ mutations: [{ op: "put", key: "k", value: "c", expectVersion: 0 }], journal: [{ n: 3 }] });
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(persister.batches.length, 2);
  // Even if its own persist succeeds, the group behind the failed one fails: it was checked against it.
  persister.release(0);
  await t.throwsAsync(b, { instanceOf: StoreIoError, message: /earlier commit/ });
  t.is(table.get("k"), undefined);
  t.deepEqual(engine.head, EMPTY_JOURNAL_HEAD);
  await persister.handedOver(3);
  const third = persister.batches[2]!;
  t.deepEqual(third.ops, [{ kind: "put", key: "k", version: 1, json: '"c"' }], "checked against the committed state only");
  t.deepEqual(verifySealedLines(third.journalLines).parsed.map((l) => l.entry), [{ n: 3 }], "sealed from the committed head");
  persister.release();
  t.is((await c).journalHead.seq, 1);
  t.deepEqual(table.get("k"), { key: "k", version: 1, value: "c" });
});
