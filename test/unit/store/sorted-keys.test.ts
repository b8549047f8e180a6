import test from "ava";
import fc from "fast-check";
import { SortedKeySet, compareKeys } from "../../../daemon/src/store/memory/sorted-keys.js";

/** The reference: a plain sorted array. */
function referencePage(keys: string[], prefix: string, limit: number, startAfter?: string) {
  const matching = keys.filter((k) => k.startsWith(prefix) && (startAfter === undefined || k > startAfter));
  return { keys: matching.slice(0, limit), hasMore: matching.length > limit };
}

// Short keys over a tiny alphabet collide and share prefixes often; 2,000 ops force chunk splits and removals.
const keyArb = fc.string({ unit: fc.constantFrom("a", "b", "é", "\ud83d", "\ude00", "/"), maxLength: 6 });
const opArb = fc.record({ add: fc.boolean(), key: keyArb });
const queryArb = fc.tuple(keyArb, fc.integer({ min: 1, max: 40 }), fc.option(keyArb, { nil: undefined }));

test("SortedKeySet agrees with a sorted array under random adds and deletes", (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 2000 }), fc.array(queryArb, { maxLength: 20 }), (ops, queries) => {
      const set = new SortedKeySet();
      const ref = new Set<string>();
      for (const op of ops) {
        if (op.add) {
          t.is(set.add(op.key), !ref.has(op.key));
          ref.add(op.key);
        } else {
          t.is(set.delete(op.key), ref.delete(op.key));
        }
      }
      const sorted = [...ref].sort(compareKeys);
      t.is(set.size, sorted.length);
      t.deepEqual([...set], sorted);
      for (const [prefix, limit, startAfter] of queries) {
        t.deepEqual(set.page(prefix, limit, startAfter), referencePage(sorted, prefix, limit, startAfter));
        t.is(set.countPrefix(prefix), sorted.filter((k) => k.startsWith(prefix)).length);
      }
    }),
    { numRuns: 60, seed: 20261203 },
  );
});

test("SortedKeySet.fromKeys builds the same set as adds, across many chunks", (t) => {
  const keys = Array.from({ length: 5000 }, (_, i) => `k/${(i * 7919) % 5000}`);
  const built = SortedKeySet.fromKeys(keys);
  const added = new SortedKeySet();
  for (const k of keys) added.add(k);
  t.deepEqual([...built], [...added]);
  t.is(built.countPrefix("k/1"), keys.filter((k) => k.startsWith("k/1")).length);
  for (const k of keys.slice(0, 2500)) t.true(built.delete(k));
  t.is(built.size, 2500);
  t.deepEqual(built.page("k/", 3, "k/4"), referencePage([...built], "k/", 3, "k/4"));
});
