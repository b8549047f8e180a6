import test from "ava";
import { generateKeyPairSync } from "node:crypto";
import { AuditSealer, verifyChain, toJournalEntry } from "../../../daemon/src/core/audit/chain.js";
import { EMPTY_JOURNAL_HEAD } from "../../../daemon/src/store/store.js";

const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const other = generateKeyPairSync("ed25519").publicKey;
const event = (i: number) => toJournalEntry({ time: new Date(0).toISOString(), principal: "CN=t", method: "m", resource: `r${i}`, vault: "v", result: "OK", reason: "", details: { i: String(i) } });

function sealed(n: number) {
  const sealer = new AuditSealer(privateKey);
  const a = sealer.seal([event(1), event(2), event(3)].slice(0, Math.min(3, n)), EMPTY_JOURNAL_HEAD);
  const b = sealer.seal(Array.from({ length: n - 3 }, (_, i) => event(i + 4)), a.head);
  return { lines: [...a.lines, ...b.lines], head: sealer.sign(b.head) };
}

test("a sealed chain verifies; the head signature is checked with the public key", async (t) => {
  const { lines, head } = sealed(8);
  t.is(head.seq, 8);
  t.true((await verifyChain(lines, head, publicKey)).valid);
  const wrongKey = await verifyChain(lines, head, other);
  t.false(wrongKey.valid);
  t.is(wrongKey.firstBadSequence, 8);
});

test("an unsigned head does not verify", async (t) => {
  const sealer = new AuditSealer(privateKey);
  const { lines, head } = sealer.seal([event(1), event(2)], EMPTY_JOURNAL_HEAD);
  t.is(head.signature, "");
  const r = await verifyChain(lines, head, publicKey);
  t.false(r.valid);
  t.true((await verifyChain(lines, sealer.sign(head), publicKey)).valid);
});

test("sealing is pure: the same input seals to the same lines", (t) => {
  const sealer = new AuditSealer(privateKey);
  t.deepEqual(sealer.seal([event(1)], EMPTY_JOURNAL_HEAD).lines, sealer.seal([event(1)], EMPTY_JOURNAL_HEAD).lines);
});

test("edits, deletions, insertions, reorders and truncation name the first bad sequence", async (t) => {
  const { lines, head } = sealed(8);
  const cases: Array<[string, string[], number]> = [
    ["edit", lines.map((l, i) => (i === 2 ? l.replace('"r3"', '"rX"') : l)), 3],
    ["delete", lines.filter((_, i) => i !== 4), 5],
    ["insert", [...lines.slice(0, 6), lines[1]!, ...lines.slice(6)], 7],
    ["reorder", [lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)], 2],
    ["truncate", lines.slice(0, 5), 6],
    ["garbage", [...lines.slice(0, 3), "{not json", ...lines.slice(4)], 4],
  ];
  for (const [what, tampered, seq] of cases) {
    const r = await verifyChain(tampered, head, publicKey);
    t.false(r.valid, what);
    t.is(r.firstBadSequence, seq, what);
  }
});
