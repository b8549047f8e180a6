/**
 * The write-ahead log: numbered segment files `wal/<n>.wal` of checksummed JSON lines, `<crc32 hex> <json>\n`.
 *
 * Every segment starts with a header record holding the state at its creation (commit number, journal head,
 * committed journal length); then come commit records, one per group commit, each holding the group's changes
 * with their resulting versions, the group's sealed journal lines, the journal head after it and the journal's
 * committed length. A commit record reaching the disk whole is the commit point. Replay is idempotent (absolute
 * versions), so replaying a segment over shard files that already contain some of its changes gives the same state.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { StoreCorruptError, type JournalHead } from "../store.js";
import type { AppliedOp } from "../memory/record-table.js";

/** State carried by every record: the commit number and the journal as of that commit. */
export interface WalState {
  /** Number of the last commit record (0 before the first). */
  readonly commitSeq: number;
  readonly head: JournalHead;
  /** Committed length of the journal file in bytes. */
  readonly journalBytes: number;
}

export type WalRecord =
  | ({ readonly type: "header"; readonly segment: number } & WalState)
  | ({ readonly type: "commit"; readonly ops: readonly AppliedOp[]; readonly journalLines: readonly string[] } & WalState);

const SEGMENT_NAME = /^(\d{12})\.wal$/;

export function segmentFileName(segment: number): string {
  return `${String(segment).padStart(12, "0")}.wal`;
}

/** Segment numbers present in `walDir`, ascending. */
export async function listSegments(walDir: string): Promise<number[]> {
  const names = await readdir(walDir);
  return names
    .map((name) => SEGMENT_NAME.exec(name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

export function encodeHeader(segment: number, state: WalState): Buffer {
  return frame(`{"t":"h","seg":${segment},${encodeState(state)}}`);
}

/**
 * A put is `[key, version, "<value's JSON text>"]`: the value travels as the text memory holds, so replay needs no
 * parse-and-stringify of every value (the cost that dominates recovering a long WAL). `j` holds the journal lines
 * (as strings), so recovery can rewrite them if the crash hit before the journal's own fsync completed.
 */
export function encodeCommit(ops: readonly AppliedOp[], journalLines: readonly string[], state: WalState): Buffer {
  const parts = ops.map((op) =>
    op.kind === "put"
      ? `[${JSON.stringify(op.key)},${op.version},${JSON.stringify(op.json)}]`
      : `[${JSON.stringify(op.key)}]`,
  );
  const journal = journalLines.length === 0 ? "" : `"j":${JSON.stringify(journalLines)},`;
  return frame(`{"t":"c","ops":[${parts.join(",")}],${journal}${encodeState(state)}}`);
}

function encodeState(state: WalState): string {
  const head = JSON.stringify({ seq: state.head.seq, hash: state.head.hash, signature: state.head.signature });
  return `"c":${state.commitSeq},"head":${head},"jl":${state.journalBytes}`;
}

function frame(json: string): Buffer {
  const body = Buffer.from(json, "utf8");
  const crc = crc32(body).toString(16).padStart(8, "0");
  return Buffer.concat([Buffer.from(`${crc} `), body, Buffer.from("\n")]);
}

export interface SegmentContents {
  readonly records: WalRecord[];
  /** Bytes of whole, valid records from the start; anything after is a torn tail. */
  readonly validBytes: number;
  /** Length of the first record (the header when the segment is whole). */
  readonly firstRecordBytes: number;
  readonly fileBytes: number;
  /**
   * The one valid record found after the torn tail, if any, and whether the torn bytes before it hold a zero byte
   * (which no record holds: JSON escapes it). A crash while two pipelined commits were being flushed can leave the
   * second one's record whole on disk and part of the first one's never written (zeros: the file system writes pages
   * back in any order); the caller accepts it as part of the torn tail only where that explains it (see `replayWal`).
   */
  readonly afterTear?: { readonly record: WalRecord; readonly unwrittenBefore: boolean };
}

/**
 * Reads a segment. A record that is incomplete or fails its checksum ends the valid part: that is a torn tail,
 * left by a crash during an append. Valid records after an invalid one cannot come from a crash, except a single
 * one (`afterTear`, see there): more means damage, `StoreCorruptError`.
 */
export async function readSegment(path: string): Promise<SegmentContents> {
  const data = await readFile(path);
  const records: WalRecord[] = [];
  let pos = 0;
  let firstRecordBytes = 0;
  let afterTear: SegmentContents["afterTear"];
  while (pos < data.length) {
    const nl = data.indexOf(0x0a, pos);
    const record = nl < 0 ? undefined : decodeLine(data.subarray(pos, nl), path);
    if (record === undefined) {
      const after = validRecordsAfter(data, nl < 0 ? data.length : nl + 1, path);
      if (after.length > 1) {
        throw new StoreCorruptError(`WAL segment ${path} is damaged at byte ${pos}: valid records follow an invalid one`);
      }
      if (after[0] !== undefined) afterTear = { record: after[0].record, unwrittenBefore: data.subarray(pos, after[0].start).includes(0) };
      break;
    }
    records.push(record);
    pos = nl + 1;
    if (records.length === 1) firstRecordBytes = pos;
  }
  return { records, validBytes: pos, firstRecordBytes, fileBytes: data.length, ...(afterTear ? { afterTear } : {}) };
}

/** The valid records from `from` on, with their offsets (stops at two: more than one is damage either way). */
function validRecordsAfter(data: Buffer, from: number, path: string): { record: WalRecord; start: number }[] {
  const found: { record: WalRecord; start: number }[] = [];
  let pos = from;
  while (pos < data.length && found.length < 2) {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) break;
    const record = decodeLine(data.subarray(pos, nl), path);
    if (record !== undefined) found.push({ record, start: pos });
    pos = nl + 1;
  }
  return found;
}

/** undefined when the line is torn (bad framing or checksum); throws when a checksummed record is malformed. */
function decodeLine(line: Buffer, path: string): WalRecord | undefined {
  if (line.length < 10 || line[8] !== 0x20) return undefined;
  const body = line.subarray(9);
  const crc = Number.parseInt(line.subarray(0, 8).toString("latin1"), 16);
  if (!Number.isFinite(crc) || crc32(body) !== crc) return undefined;
  try {
    return toRecord(JSON.parse(body.toString("utf8")) as unknown);
  } catch (error) {
    throw new StoreCorruptError(`WAL segment ${path} holds a malformed record`, { cause: error });
  }
}

function toRecord(raw: unknown): WalRecord {
  if (typeof raw !== "object" || raw === null) throw new Error("not an object");
  const r = raw as Record<string, unknown>;
  const state = toState(r);
  if (r["t"] === "h" && isCount(r["seg"])) return { type: "header", segment: r["seg"], ...state };
  if (r["t"] !== "c" || !Array.isArray(r["ops"])) throw new Error("unknown record type");
  const ops = r["ops"].map((op: unknown): AppliedOp => {
    if (!Array.isArray(op) || typeof op[0] !== "string") throw new Error("bad op");
    if (op.length === 1) return { kind: "delete", key: op[0] };
    if (op.length !== 3 || !isCount(op[1]) || typeof op[2] !== "string") throw new Error("bad put op");
    return { kind: "put", key: op[0], version: op[1], json: op[2] };
  });
  const journalLines = r["j"] ?? [];
  if (!Array.isArray(journalLines) || !journalLines.every((l): l is string => typeof l === "string")) {
    throw new Error("bad journal lines");
  }
  return { type: "commit", ops, journalLines, ...state };
}

function toState(r: Record<string, unknown>): WalState {
  const head = r["head"] as Record<string, unknown> | null | undefined;
  if (!isCount(r["c"]) || !isCount(r["jl"]) || typeof head !== "object" || head === null) throw new Error("bad state");
  const { seq, hash, signature } = head;
  if (!isCount(seq) || typeof hash !== "string" || typeof signature !== "string") throw new Error("bad journal head");
  return { commitSeq: r["c"], journalBytes: r["jl"], head: Object.freeze({ seq, hash, signature }) };
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

export function segmentPath(walDir: string, segment: number): string {
  return join(walDir, segmentFileName(segment));
}
