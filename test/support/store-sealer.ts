/**
 * A SHA-256 hash-chain `JournalSealer` for store tests, and a verifier for what it sealed. It stands in for the
 * audit chain of core/audit (which signs heads); the store treats lines as opaque, so any pure sealer will do.
 *
 * Line format: {"seq":n,"prev":"<hash of n-1>","hash":"<sha256(seq, prev, entry)>","entry":{...}}
 */
import { createHash } from "node:crypto";
import { EMPTY_JOURNAL_HEAD, type JournalEntry, type JournalHead, type JournalSealer } from "../../daemon/src/store/store.js";

export interface SealedLine {
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
  readonly entry: JournalEntry;
}

function chainHash(seq: number, prev: string, entry: JournalEntry): string {
  return createHash("sha256").update(`${seq}\n${prev}\n${JSON.stringify(entry)}`).digest("hex");
}

function signature(hash: string): string {
  return `test-signature:${hash}`;
}

export const sha256Sealer: JournalSealer = {
  seal(entries: readonly JournalEntry[], prev: JournalHead) {
    const lines: string[] = [];
    let seq = prev.seq;
    let hash = prev.hash;
    for (const entry of entries) {
      seq++;
      const next = chainHash(seq, hash, entry);
      lines.push(JSON.stringify({ seq, prev: hash, hash: next, entry }));
      hash = next;
    }
    return { lines, head: { seq, hash, signature: signature(hash) } };
  },
};

/**
 * Checks that `lines` are sequence numbers `from.seq + 1 …` chained from `from`, and returns the parsed lines and
 * the head they end at. Throws on the first break.
 */
export function verifySealedLines(lines: readonly string[], from: JournalHead = EMPTY_JOURNAL_HEAD): { parsed: SealedLine[]; head: JournalHead } {
  const parsed: SealedLine[] = [];
  let seq = from.seq;
  let hash = from.hash;
  for (const line of lines) {
    const l = JSON.parse(line) as SealedLine;
    seq++;
    if (l.seq !== seq) throw new Error(`journal line has seq ${l.seq}, expected ${seq}`);
    if (l.prev !== hash) throw new Error(`journal line ${seq} does not chain from ${hash}`);
    if (l.hash !== chainHash(seq, hash, l.entry)) throw new Error(`journal line ${seq} has a wrong hash`);
    hash = l.hash;
    parsed.push(l);
  }
  return { parsed, head: { seq, hash, signature: seq === 0 ? "" : signature(hash) } };
}
