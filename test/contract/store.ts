/**
 * The Store contract suite (daemon/src/store/store.ts), run against every backend: `storeContract(test, makeStore)`
 * registers its tests on the caller's ava `test` (the vault `ExerciseBackend` pattern). `makeStore` returns a fresh,
 * empty store for each test and registers its own cleanup on `t` (the suite closes stores it is done with, but a
 * failing test may leave one open).
 */
import type { ExecutionContext, TestFn } from "ava";
import {
  EMPTY_JOURNAL_HEAD,
  StoreClosedError,
  StoreConflictError,
  StoreError,
  type JournalSealer,
  type JsonValue,
  type Mutation,
  type Store,
} from "../../daemon/src/store/store.js";
import { sha256Sealer, verifySealedLines } from "../support/store-sealer.js";

export interface MakeStoreOptions {
  /** Absent: a store without a journal (like the daemon's internal store). */
  readonly sealer?: JournalSealer;
}

export type MakeStore = (t: ExecutionContext<unknown>, options: MakeStoreOptions) => Promise<Store>;

const put = (key: string, value: JsonValue, expectVersion?: number): Mutation =>
  expectVersion === undefined ? { op: "put", key, value } : { op: "put", key, value, expectVersion };
const del = (key: string, expectVersion?: number): Mutation =>
  expectVersion === undefined ? { op: "delete", key } : { op: "delete", key, expectVersion };

/** Every record under `prefix`, paging with `pageSize`. */
async function listAll(store: Store, prefix: string, pageSize: number): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let startAfter: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.list(prefix, startAfter === undefined ? { pageSize } : { pageSize, startAfter });
    pages++;
    keys.push(...page.records.map((r) => r.key));
    if (page.nextStartAfter === undefined) return { keys, pages };
    startAfter = page.nextStartAfter;
  }
}

/** Everything a test can observe about a store, to assert that a rejected commit changed nothing. */
export async function snapshotStore(store: Store): Promise<{ records: [string, number, JsonValue][]; head: unknown; journal: string[] }> {
  const records: [string, number, JsonValue][] = [];
  let startAfter: string | undefined;
  for (;;) {
    const page = await store.list("", startAfter === undefined ? { pageSize: 1000 } : { pageSize: 1000, startAfter });
    for (const r of page.records) records.push([r.key, r.version, r.value]);
    if (page.nextStartAfter === undefined) break;
    startAfter = page.nextStartAfter;
  }
  const head = await store.journalHead();
  return { records, head, journal: await store.readJournal(1, head.seq) };
}

export function storeContract(test: TestFn<unknown>, makeStore: MakeStore): void {
  const sealed = (t: ExecutionContext<unknown>) => makeStore(t, { sealer: sha256Sealer });

  test("store: get, put, delete and versions", async (t) => {
    const store = await sealed(t);
    t.is(await store.get("a/1"), undefined);
    const r1 = await store.commit({ mutations: [put("a/1", { n: 1 })] });
    t.deepEqual([...r1.versions], [["a/1", 1]]);
    t.deepEqual(await store.get("a/1"), { key: "a/1", version: 1, value: { n: 1 } });
    const r2 = await store.commit({ mutations: [put("a/1", { n: 2 })] });
    t.is(r2.versions.get("a/1"), 2);
    t.deepEqual(await store.get("a/1"), { key: "a/1", version: 2, value: { n: 2 } });
    const r3 = await store.commit({ mutations: [del("a/1")] });
    t.is(r3.versions.size, 0);
    t.is(await store.get("a/1"), undefined);
    // A re-created record starts again at version 1.
    await store.commit({ mutations: [put("a/1", "again")] });
    t.deepEqual(await store.get("a/1"), { key: "a/1", version: 1, value: "again" });
    // Deleting an absent key without a check is a no-op.
    await store.commit({ mutations: [del("a/none")] });
    t.is(await store.get("a/none"), undefined);
    await store.close();
  });

  test("store: every JSON value type round-trips", async (t) => {
    const store = await sealed(t);
    const values: JsonValue[] = [null, true, false, 0, -1.5, 1e21, "", "ünï€😀\n\"", [], [1, [2, { a: null }]], {}, { "": 1, __proto__x: { b: [true] } }];
    await store.commit({ mutations: values.map((v, i) => put(`v/${i}`, v)) });
    for (const [i, v] of values.entries()) t.deepEqual((await store.get(`v/${i}`))?.value, v);
    await store.close();
  });

  test("store: expectVersion checks (0 = must not exist)", async (t) => {
    const store = await sealed(t);
    await store.commit({ mutations: [put("k", 1, 0)] });
    const exists = await t.throwsAsync(store.commit({ mutations: [put("k", 2, 0)] }), { instanceOf: StoreConflictError });
    t.like(exists, { key: "k", expectedVersion: 0, actualVersion: 1 });
    const stale = await t.throwsAsync(store.commit({ mutations: [put("k", 2, 5)] }), { instanceOf: StoreConflictError });
    t.like(stale, { key: "k", expectedVersion: 5, actualVersion: 1 });
    const missing = await t.throwsAsync(store.commit({ mutations: [del("nope", 1)] }), { instanceOf: StoreConflictError });
    t.like(missing, { key: "nope", expectedVersion: 1, actualVersion: 0 });
    t.is((await store.commit({ mutations: [put("k", 2, 1)] })).versions.get("k"), 2);
    await t.throwsAsync(store.commit({ mutations: [del("k", 1)] }), { instanceOf: StoreConflictError });
    await store.commit({ mutations: [del("k", 2)] });
    t.is(await store.get("k"), undefined);
    await store.commit({ mutations: [put("k", "new", 0)] });
    t.is((await store.get("k"))?.version, 1);
    await store.close();
  });

  test("store: a commit with one failed check changes nothing, journal included", async (t) => {
    const store = await sealed(t);
    await store.commit({ mutations: [put("x/a", "a1"), put("x/b", "b1")], journal: [{ op: "setup" }] });
    const before = await snapshotStore(store);
    const error = await t.throwsAsync(
      store.commit({
        mutations: [put("x/a", "a2", 1), del("x/b"), put("x/c", "c1", 0), put("x/a", "a3", 7)],
        journal: [{ op: "bad" }],
      }),
      { instanceOf: StoreConflictError },
    );
    t.like(error, { key: "x/a", expectedVersion: 7, actualVersion: 2 });
    t.deepEqual(await snapshotStore(store), before);
    await store.close();
  });

  test("store: mutations of one key within a commit apply in order", async (t) => {
    const store = await sealed(t);
    const r = await store.commit({ mutations: [put("s", 1, 0), put("s", 2, 1), put("t", 1), del("t", 1), put("u", 1)] });
    t.deepEqual(Object.fromEntries(r.versions), { s: 2, u: 1 });
    t.deepEqual(await store.get("s"), { key: "s", version: 2, value: 2 });
    t.is(await store.get("t"), undefined);
    await store.close();
  });

  test("store: list by prefix in UTF-16 code unit order, with paging", async (t) => {
    const store = await sealed(t);
    // Code-unit order, not code-point or locale order: U+1F600 (surrogates D83D…) sorts before U+FFFF.
    const inside = ["p/", "p/A", "p/B", "p/a", "p/a/1", "p/aa", "p/b", "p/é", "p/😀", "p/\uffff"];
    const outside = ["p", "o/z", "p0", "q/a", "P/a"];
    await store.commit({ mutations: [...outside, ...inside].map((k, i) => put(k, i)) });
    for (const pageSize of [1, 2, 3, 4, 100]) {
      const { keys, pages } = await listAll(store, "p/", pageSize);
      t.deepEqual(keys, inside, `pageSize ${pageSize}`);
      t.is(pages, Math.max(1, Math.ceil(inside.length / pageSize)), `pages for pageSize ${pageSize}`);
    }
    const first = await store.list("p/", { pageSize: 3 });
    t.deepEqual(
      first.records.map((r) => [r.key, r.version, r.value]),
      [["p/", 1, outside.length], ["p/A", 1, outside.length + 1], ["p/B", 1, outside.length + 2]],
    );
    t.is(first.nextStartAfter, "p/B");
    // startAfter need not be a stored key; one before the prefix means "from the start".
    t.deepEqual((await store.list("p/", { pageSize: 2, startAfter: "p/a0" })).records.map((r) => r.key), ["p/aa", "p/b"]);
    t.deepEqual((await store.list("p/", { pageSize: 2, startAfter: "a" })).records.map((r) => r.key), ["p/", "p/A"]);
    t.deepEqual(await store.list("p/", { pageSize: 5, startAfter: "p/\uffff" }), { records: [] });
    t.deepEqual(await store.list("zz/", { pageSize: 5 }), { records: [] });
    // Exactly a full last page: no nextStartAfter.
    t.is((await store.list("p/", { pageSize: inside.length })).nextStartAfter, undefined);
    t.is((await listAll(store, "", 4)).keys.length, inside.length + outside.length);
    await store.close();
  });

  test("store: page size is clamped to 1–1000", async (t) => {
    const store = await sealed(t);
    await store.commit({ mutations: Array.from({ length: 1005 }, (_, i) => put(`c/${String(i).padStart(4, "0")}`, i)) });
    const big = await store.list("c/", { pageSize: 5000 });
    t.is(big.records.length, 1000);
    t.is(big.nextStartAfter, "c/0999");
    t.is((await store.list("c/", { pageSize: 0 })).records.length, 1);
    t.is((await store.list("c/", { pageSize: 1000, startAfter: "c/0999" })).records.length, 5);
    await store.close();
  });

  test("store: count by prefix", async (t) => {
    const store = await sealed(t);
    await store.commit({
      mutations: [
        ...Array.from({ length: 1200 }, (_, i) => put(`vaults/a/keys/${i}`, i)),
        ...Array.from({ length: 30 }, (_, i) => put(`vaults/b/keys/${i}`, i)),
        put("vaults/a", "vault"),
        put("vaults/ab/keys/1", 1),
      ],
    });
    t.is(await store.count("vaults/a/keys/"), 1200);
    t.is(await store.count("vaults/a"), 1202);
    t.is(await store.count("vaults/b/"), 30);
    t.is(await store.count("vaults/c/"), 0);
    t.is(await store.count(""), 1232);
    await store.commit({ mutations: Array.from({ length: 600 }, (_, i) => del(`vaults/a/keys/${i * 2}`)) });
    t.is(await store.count("vaults/a/keys/"), 600);
    t.is((await listAll(store, "vaults/a/keys/", 1000)).keys.length, 600);
    await store.close();
  });

  test("store: concurrent commits all land, in call order", async (t) => {
    const store = await sealed(t);
    const creates = Array.from({ length: 200 }, (_, i) =>
      store.commit({ mutations: [put(`n/${i}`, i, 0)], journal: [{ op: "create", i }] }),
    );
    const bumps = Array.from({ length: 50 }, (_, i) => store.commit({ mutations: [put("counter", i)], journal: [{ op: "bump", i }] }));
    const results = await Promise.all([...creates, ...bumps]);
    t.is(await store.count("n/"), 200);
    for (let i = 0; i < 200; i++) t.deepEqual(await store.get(`n/${i}`), { key: `n/${i}`, version: 1, value: i });
    // Serialised in call order: the last bump wins, every bump got the next version and the next journal seq.
    t.deepEqual(await store.get("counter"), { key: "counter", version: 50, value: 49 });
    t.deepEqual(
      results.map((r) => r.journalHead.seq),
      Array.from({ length: 250 }, (_, i) => i + 1),
    );
    t.deepEqual(
      results.slice(200).map((r) => r.versions.get("counter")),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    const lines = await store.readJournal(1, 1000);
    const { parsed, head } = verifySealedLines(lines);
    t.deepEqual(head, await store.journalHead());
    t.deepEqual(
      parsed.map((l) => l.entry),
      [...Array.from({ length: 200 }, (_, i) => ({ op: "create", i })), ...Array.from({ length: 50 }, (_, i) => ({ op: "bump", i }))],
    );
    await store.close();
  });

  test("store: of concurrent commits expecting one version, exactly one wins", async (t) => {
    const store = await sealed(t);
    await store.commit({ mutations: [put("race", "start")] });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => store.commit({ mutations: [put("race", i, 1)], journal: [{ i }] })),
    );
    // Call order decides: the first one wins.
    t.is(outcomes[0]?.status, "fulfilled");
    for (const o of outcomes.slice(1)) {
      t.is(o.status, "rejected");
      if (o.status === "rejected") t.true(o.reason instanceof StoreConflictError);
    }
    t.deepEqual(await store.get("race"), { key: "race", version: 2, value: 0 });
    t.deepEqual(verifySealedLines(await store.readJournal(1, 100)).parsed.map((l) => l.entry), [{ i: 0 }]);
    await store.close();
  });

  test("store: a conflicting commit fails alone among concurrent ones", async (t) => {
    const store = await sealed(t);
    const a = store.commit({ mutations: [put("g/a", 1, 0)], journal: [{ c: "a" }] });
    const b = store.commit({ mutations: [put("g/b", 1, 3)], journal: [{ c: "b" }] });
    const c = store.commit({ mutations: [put("g/a", 2, 1), put("g/c", 1)], journal: [{ c: "c1" }, { c: "c2" }] });
    await t.throwsAsync(b, { instanceOf: StoreConflictError });
    t.is((await a).journalHead.seq, 1);
    const rc = await c;
    t.is(rc.journalHead.seq, 3);
    t.is(rc.versions.get("g/a"), 2);
    t.is(await store.get("g/b"), undefined);
    const { parsed, head } = verifySealedLines(await store.readJournal(1, 10));
    t.deepEqual(parsed.map((l) => l.entry), [{ c: "a" }, { c: "c1" }, { c: "c2" }]);
    t.deepEqual(head, rc.journalHead);
    await store.close();
  });

  test("store: journal sealing, head and readJournal ranges", async (t) => {
    const store = await sealed(t);
    t.deepEqual(await store.journalHead(), EMPTY_JOURNAL_HEAD);
    t.deepEqual(await store.readJournal(1, 10), []);
    const r1 = await store.commit({ mutations: [put("j/1", 1)], journal: [{ e: 1 }, { e: 2 }] });
    t.is(r1.journalHead.seq, 2);
    // A commit without entries leaves the head as it was; a commit with only entries is fine.
    const r2 = await store.commit({ mutations: [put("j/2", 2)] });
    t.deepEqual(r2.journalHead, r1.journalHead);
    const r3 = await store.commit({ mutations: [], journal: [{ e: 3 }] });
    t.is(r3.journalHead.seq, 3);
    t.deepEqual(await store.journalHead(), r3.journalHead);
    const all = await store.readJournal(1, 100);
    t.is(all.length, 3);
    const { parsed, head } = verifySealedLines(all);
    t.deepEqual(head, r3.journalHead);
    t.deepEqual(parsed.map((l) => l.entry), [{ e: 1 }, { e: 2 }, { e: 3 }]);
    t.deepEqual(await store.readJournal(2, 1), [all[1]]);
    t.deepEqual(await store.readJournal(2, 5), all.slice(1));
    t.deepEqual(await store.readJournal(3, 1), [all[2]]);
    t.deepEqual(await store.readJournal(4, 5), []);
    t.deepEqual(await store.readJournal(1, 0), []);
    t.deepEqual(await store.readJournal(0, 2), all.slice(0, 2));
    await store.close();
  });

  test("store: a store without a sealer rejects journal entries and keeps working", async (t) => {
    const store = await makeStore(t, {});
    await t.throwsAsync(store.commit({ mutations: [put("i/1", 1)], journal: [{ e: 1 }] }), { instanceOf: StoreError });
    t.is(await store.get("i/1"), undefined);
    await store.commit({ mutations: [put("i/1", 1)] });
    t.is((await store.get("i/1"))?.version, 1);
    t.deepEqual(await store.journalHead(), EMPTY_JOURNAL_HEAD);
    t.deepEqual(await store.readJournal(1, 10), []);
    await store.close();
  });

  test("store: callers cannot change stored state through values", async (t) => {
    const store = await sealed(t);
    const value = { list: [1, 2], nested: { a: "x" } };
    const entry = { who: "alice", tags: ["t"] };
    const pending = store.commit({ mutations: [put("iso", value)], journal: [entry] });
    value.list.push(3);
    value.nested.a = "changed";
    entry.tags.push("changed");
    await pending;
    const got = await store.get<{ list: number[]; nested: { a: string } }>("iso");
    t.deepEqual(got?.value, { list: [1, 2], nested: { a: "x" } });
    try {
      got!.value.list.push(99);
      got!.value.nested.a = "mutated";
    } catch {
      // A frozen result is allowed too.
    }
    const listed = (await store.list<{ list: number[] }>("iso", { pageSize: 10 })).records[0]!;
    try {
      listed.value.list.push(100);
    } catch {
      // frozen
    }
    t.deepEqual((await store.get("iso"))?.value, { list: [1, 2], nested: { a: "x" } });
    t.deepEqual(verifySealedLines(await store.readJournal(1, 1)).parsed[0]?.entry, { who: "alice", tags: ["t"] });
    await store.close();
  });

  test("store: invalid requests are rejected with StoreError and change nothing", async (t) => {
    const store = await sealed(t);
    await store.commit({ mutations: [put("ok", 1)] });
    const before = await snapshotStore(store);
    await t.throwsAsync(store.commit({ mutations: [put("", 1)] }), { instanceOf: StoreError });
    await t.throwsAsync(store.commit({ mutations: [{ op: "put", key: "u", value: undefined as unknown as JsonValue }] }), {
      instanceOf: StoreError,
    });
    await t.throwsAsync(store.commit({ mutations: [put("neg", 1, -1)] }), { instanceOf: StoreError });
    await t.throwsAsync(store.commit({ mutations: [put("ok2", 1)], journal: ["not an object" as unknown as { x: 1 }] }), {
      instanceOf: StoreError,
    });
    t.deepEqual(await snapshotStore(store), before);
    await store.close();
  });

  test("store: close lets queued commits finish, then every call rejects", async (t) => {
    const store = await sealed(t);
    const queued = Array.from({ length: 20 }, (_, i) => store.commit({ mutations: [put(`q/${i}`, i)], journal: [{ i }] }));
    const closing = store.close();
    const results = await Promise.all(queued);
    t.is(results.at(-1)?.journalHead.seq, 20);
    await closing;
    await store.close();
    await t.throwsAsync(store.get("q/1"), { instanceOf: StoreClosedError });
    await t.throwsAsync(store.list("q/", { pageSize: 1 }), { instanceOf: StoreClosedError });
    await t.throwsAsync(store.count("q/"), { instanceOf: StoreClosedError });
    await t.throwsAsync(store.commit({ mutations: [put("q/x", 1)] }), { instanceOf: StoreClosedError });
    await t.throwsAsync(store.journalHead(), { instanceOf: StoreClosedError });
    await t.throwsAsync(store.readJournal(1, 1), { instanceOf: StoreClosedError });
  });
}
