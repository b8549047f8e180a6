/**
 * The audit journal file: append-only JSON lines, line i holding sequence number i. Only the first
 * `committedBytes` are committed (the WAL records that length); recovery moves anything after it to
 * `audit.rolledback.jsonl` and cuts it off. The file is flushed by checkpoints, not per commit: the lines of every
 * commit since are also in the WAL, and recovery rewrites those that did not reach the disk. An index of line
 * offsets keeps `read` proportional to what it returns.
 */
import { open } from "node:fs/promises";
import { dirname } from "node:path";
import { StoreCorruptError } from "../store.js";
import { AppendFile } from "./append-file.js";
import { fileSize, syncDirectory } from "./durable-file.js";
import type { StoreFaults } from "./faults.js";

const SCAN_CHUNK_BYTES = 1 << 20;

export class JournalFile {
  readonly #file: AppendFile;
  /** Start offset of each committed line: #starts[i] is where sequence number i + 1 begins. */
  readonly #starts: number[];

  private constructor(file: AppendFile, starts: number[]) {
    this.#file = file;
    this.#starts = starts;
  }

  /**
   * Opens (creating it if absent and nothing is committed) the journal whose committed part is `committed.bytes`
   * long and holds `committed.lines` lines, the last of them `walLines` (the WAL's copy of the lines it may not
   * hold on disk), after recovering its tail. Past a part that matches `walLines`, a crash can only have left
   * those lines absent or zero-filled; they are rewritten. A journal missing bytes before `walLines`, holding other
   * bytes where they belong, or whose committed part does not hold exactly `committed.lines` lines, was truncated
   * or altered outside the store: that is `StoreCorruptError`, not something to repair silently.
   */
  static async open(
    path: string,
    rolledBackPath: string,
    committed: { bytes: number; lines: number },
    walLines: readonly string[],
    faults?: StoreFaults,
  ): Promise<JournalFile> {
    const redo = encodeLines(walLines);
    const redoStart = committed.bytes - redo.length;
    let size = await fileSize(path);
    if (size === undefined) {
      if (redoStart > 0) throw new StoreCorruptError(`audit journal ${path} is missing`);
      await (await open(path, "a")).close();
      await syncDirectory(dirname(path));
      size = 0;
    }
    if (redoStart < 0 || size < redoStart) {
      throw new StoreCorruptError(
        `audit journal ${path} has ${size} bytes but ${committed.bytes} are committed: it was truncated or replaced`,
      );
    }
    const file = await AppendFile.open(
      path,
      committed.bytes,
      { write: "journal-write", sync: "journal-sync", rollback: "journal-rollback" },
      faults,
    );
    try {
      if (size > committed.bytes) await moveTailAside(file, size, rolledBackPath);
      if (redo.length > 0) await redoLines(file, redo, redoStart);
      const starts = await scanLineStarts(file, committed.bytes);
      if (starts.length !== committed.lines) {
        throw new StoreCorruptError(
          `audit journal ${path} holds ${starts.length} committed lines but the store committed ${committed.lines}`,
        );
      }
      return new JournalFile(file, starts);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  get committedBytes(): number {
    return this.#file.end;
  }

  get lineCount(): number {
    return this.#starts.length;
  }

  /**
   * Writes `lines` after the committed part and the appends not yet confirmed, synchronously, without fsync; returns
   * the new end, not yet committed.
   */
  append(lines: readonly string[]): number {
    return this.#file.write(encodeLines(lines));
  }

  async sync(): Promise<void> {
    await this.#file.sync();
  }

  /** Commits an `append` once the WAL record naming `end` is durable (appends are confirmed in order). */
  confirm(lines: readonly string[], end: number): void {
    let pos = this.#file.end;
    for (const line of lines) {
      this.#starts.push(pos);
      pos += Buffer.byteLength(line, "utf8") + 1;
    }
    this.#file.confirm(end);
  }

  /** Cuts off every append not confirmed. */
  async rollback(): Promise<void> {
    await this.#file.rollback();
  }

  /** Committed lines with sequence numbers `from <= seq < to`. */
  async read(from: number, to: number): Promise<string[]> {
    if (to <= from) return [];
    const start = this.#starts[from - 1];
    if (start === undefined) return [];
    const end = this.#starts[to - 1] ?? this.#file.end;
    const text = (await this.#file.read(start, end - start)).toString("utf8");
    return text.split("\n").slice(0, to - from);
  }

  async close(): Promise<void> {
    await this.#file.close();
  }
}

/**
 * Makes the journal hold `redo` at `start`. The bytes on disk must be a prefix of `redo` followed by nothing or by
 * zeros (blocks allocated but never written before a crash); anything else there was changed outside the store.
 */
async function redoLines(file: AppendFile, redo: Buffer, start: number): Promise<void> {
  const have = await file.read(start, redo.length);
  let same = 0;
  while (same < have.length && have[same] === redo[same]) same++;
  if (same === redo.length) return;
  for (let i = same; i < have.length; i++) {
    if (have[i] !== 0) {
      throw new StoreCorruptError(
        `audit journal ${file.path} differs at byte ${start + i} from the WAL's copy of its committed lines: it was altered outside the store`,
      );
    }
  }
  await file.rewrite(redo.subarray(same), start + same);
}

function encodeLines(lines: readonly string[]): Buffer {
  return Buffer.from(lines.map((line) => `${line}\n`).join(""), "utf8");
}

/** Keeps the uncommitted tail as evidence, durably, before cutting it off the journal. */
async function moveTailAside(file: AppendFile, size: number, rolledBackPath: string): Promise<void> {
  const tail = await file.read(file.end, size - file.end);
  const evidence = tail[tail.length - 1] === 0x0a ? tail : Buffer.concat([tail, Buffer.from("\n")]);
  const out = await open(rolledBackPath, "a");
  try {
    await out.write(evidence);
    await out.sync();
  } finally {
    await out.close();
  }
  await syncDirectory(dirname(rolledBackPath));
  await file.rollback();
}

async function scanLineStarts(file: AppendFile, end: number): Promise<number[]> {
  const starts: number[] = [];
  let lineStart = 0;
  for (let pos = 0; pos < end; pos += SCAN_CHUNK_BYTES) {
    const chunk = await file.read(pos, Math.min(SCAN_CHUNK_BYTES, end - pos));
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, nl + 1)) {
      starts.push(lineStart);
      lineStart = pos + nl + 1;
    }
  }
  if (lineStart !== end) throw new StoreCorruptError(`audit journal ${file.path}: the committed part ends inside a line`);
  return starts;
}
