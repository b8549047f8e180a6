/** A sealer with `sign` is asked to sign once per group commit, and the store keeps and returns signed heads. */
import test from "ava";
import { createHash } from "node:crypto";
import { MemoryStore } from "../../../daemon/src/store/memory/memory-store.js";
import type { JournalEntry, JournalHead, JournalSealer } from "../../../daemon/src/store/store.js";

class CountingSealer implements JournalSealer {
  signs = 0;
  seal(entries: readonly JournalEntry[], prev: JournalHead) {
    let { seq, hash } = prev;
    const lines = entries.map((e) => {
      seq += 1;
      hash = createHash("sha256").update(hash + JSON.stringify(e)).digest("hex");
      return JSON.stringify({ seq, hash });
    });
    return { lines, head: { seq, hash, signature: "" } };
  }
  sign(head: JournalHead): JournalHead {
    this.signs += 1;
    return { ...head, signature: `sig:${head.seq}` };
  }
}

test("concurrent commits share signatures; the committed head is always signed", async (t) => {
  const sealer = new CountingSealer();
  const store = new MemoryStore({ sealer });
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.commit({ mutations: [{ op: "put", key: `k${i}`, value: i }], journal: [{ i }] })));
  const head = await store.journalHead();
  t.is(head.seq, 50);
  t.is(head.signature, "sig:50");
  t.true(sealer.signs < 50, `${sealer.signs} signatures for 50 commits`);
  t.true(sealer.signs >= 1);
  const last = results.find((r) => r.journalHead.seq === 50)!;
  t.is(last.journalHead.signature, "sig:50");
  await store.commit({ mutations: [], journal: [{ alone: true }] });
  t.is((await store.journalHead()).signature, "sig:51");
  await store.close();
});
