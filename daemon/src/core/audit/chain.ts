/**
 * The audit hash chain. Each record is one JSON line; `hash` = SHA-256 over the canonical JSON (keys sorted,
 * no whitespace) of every field but `hash`, including `seq` and `prevHash`. The head of each commit is signed with
 * the daemon's internal Ed25519 audit key over `mcko-audit-head:v1:<seq>:<hash>`.
 * IMPORTANT: the canonical form and the signed string are a persistent format; changing either breaks the
 * verification of every existing log.
 */
import { createHash, sign, verify, type KeyObject } from "node:crypto";
import type { JournalEntry, JournalHead, JournalSealer, JsonValue } from "../../store/store.js";

/** What core records: who did what to which resource, and how it ended. Never secrets. */
export interface AuditEventInput {
  readonly time: string;
  readonly principal: string;
  readonly method: string;
  readonly resource: string;
  /** The vault the resource belongs to, or null for daemon-wide events. */
  readonly vault: string | null;
  /** `OK` or a gRPC status code name. */
  readonly result: string;
  readonly reason: string;
  readonly details: Readonly<Record<string, string>>;
}

export interface AuditRecord extends AuditEventInput {
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

export function recordHash(record: Omit<AuditRecord, "hash"> | Record<string, unknown>): string {
  const { hash: _ignored, ...rest } = record as Record<string, unknown>;
  return createHash("sha256").update(canonicalJson(rest)).digest("hex");
}

export function headMessage(seq: number, hash: string): Buffer {
  return Buffer.from(`mcko-audit-head:v1:${seq}:${hash}`, "utf8");
}

export function toJournalEntry(event: AuditEventInput): JournalEntry {
  return { ...event, details: { ...event.details } } as unknown as JournalEntry;
}

/** Seals journal entries into chained lines; `sign` signs a head. Pure. */
export class AuditSealer implements JournalSealer {
  constructor(private readonly signingKey: KeyObject) {}

  seal(entries: readonly JournalEntry[], prev: JournalHead): { lines: string[]; head: JournalHead } {
    let seq = prev.seq;
    let prevHash = prev.hash;
    const lines: string[] = [];
    for (const entry of entries) {
      seq += 1;
      const body: Record<string, JsonValue> = { seq, ...(entry as Record<string, JsonValue>), prevHash };
      const hash = recordHash(body);
      lines.push(JSON.stringify({ ...body, hash }));
      prevHash = hash;
    }
    if (lines.length === 0) return { lines, head: prev };
    // Unsigned: the store calls `sign` once per group commit on the group's last head (an Ed25519 signature per
    // commit was the largest single cost of a small commit).
    return { lines, head: { seq, hash: prevHash, signature: "" } };
  }

  sign(head: JournalHead): JournalHead {
    return { seq: head.seq, hash: head.hash, signature: sign(null, headMessage(head.seq, head.hash), this.signingKey).toString("base64") };
  }
}

export interface ChainVerification {
  readonly valid: boolean;
  readonly recordsChecked: number;
  /** First bad sequence number, 0 when valid. */
  readonly firstBadSequence: number;
  readonly problem: string;
  readonly headSequence: number;
  readonly headHash: string;
}

/**
 * Verifies lines in file order against the signed head. Records beyond the head (written by a commit that
 * completed after the head was read) are not judged. Names the first bad sequence number for an edited,
 * deleted, inserted or reordered record, and the first missing one for a truncated log.
 */
export async function verifyChain(
  lines: AsyncIterable<string> | Iterable<string>,
  head: JournalHead,
  publicKey: KeyObject,
): Promise<ChainVerification> {
  let expected = 1;
  let prevHash = "";
  let checked = 0;
  const bad = (seq: number, problem: string): ChainVerification => ({
    valid: false,
    recordsChecked: checked,
    firstBadSequence: seq,
    problem,
    headSequence: head.seq,
    headHash: head.hash,
  });
  for await (const line of lines) {
    if (expected > head.seq) break;
    if (line.trim() === "") continue;
    let rec: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      rec = parsed as Record<string, unknown>;
    } catch {
      return bad(expected, `record ${expected} is not a valid JSON object`);
    }
    const seq = rec.seq;
    if (typeof seq !== "number" || seq !== expected) {
      return bad(
        expected,
        typeof seq === "number" && seq > expected
          ? `record ${expected} is missing or out of order (found record ${seq} in its place)`
          : `record ${expected} is out of order or duplicated (found sequence ${String(seq)} in its place)`,
      );
    }
    if (rec.prevHash !== prevHash) return bad(expected, `record ${expected} does not link to record ${expected - 1} (prevHash differs): inserted, removed or edited`);
    if (recordHash(rec) !== rec.hash) return bad(expected, `record ${expected} was modified (its hash does not match its content)`);
    prevHash = rec.hash as string;
    checked += 1;
    expected += 1;
  }
  if (head.seq === 0) {
    return { valid: true, recordsChecked: checked, firstBadSequence: 0, problem: "", headSequence: 0, headHash: "" };
  }
  if (expected <= head.seq) return bad(expected, `records ${expected} to ${head.seq} are missing (the signed head is at ${head.seq})`);
  if (prevHash !== head.hash) return bad(head.seq, `record ${head.seq} does not match the signed head`);
  const sigOk = head.signature !== "" && verify(null, headMessage(head.seq, head.hash), publicKey, Buffer.from(head.signature, "base64"));
  if (!sigOk) return bad(head.seq, `the head signature over record ${head.seq} is invalid`);
  return { valid: true, recordsChecked: checked, firstBadSequence: 0, problem: "", headSequence: head.seq, headHash: head.hash };
}

/** Parses one stored line into a record (for listing); undefined if it is not one. */
export function parseAuditLine(line: string): AuditRecord | undefined {
  try {
    const r = JSON.parse(line) as AuditRecord;
    return typeof r.seq === "number" && typeof r.method === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}
