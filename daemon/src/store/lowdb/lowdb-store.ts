/**
 * `LowdbStore`: the embedded, durable Store backend.
 *
 * Files in `dir` (one store per directory; the internal store is a second instance in its own directory):
 *   store.json              lowdb document: format and shard count, written once at creation
 *   store.lock              the pid of the process that has the store open (dir-lock.ts)
 *   shards/<n>.json         lowdb documents: the records hashed to shard n, as of the last checkpoint
 *   wal/<n>.wal             write-ahead log segments (wal.ts): every commit since the last checkpoint
 *   audit.jsonl             the sealed journal (only with a sealer); audit.rolledback.jsonl keeps cut-off tails
 *
 * A group commit (commit-engine.ts) is made durable in this order:
 *   1. the group's sealed journal lines are written after the journal's committed end (to the page cache);
 *   2. one WAL record with all the group's changes, the same journal lines, the new journal head and the journal's
 *      new length is written;
 *   3. the WAL is fsynced: the WAL record on disk is the commit point;
 *   4. the changes become visible in memory and the callers' promises resolve.
 * The journal file is not flushed per group: every committed line is also in the WAL record of its commit, and a
 * checkpoint flushes the journal before it deletes the WAL segments that hold its newest lines. So the journal's
 * lines not yet known to be on disk are exactly those of the commits in the remaining WAL segments. (One flush per
 * group instead of two saves, on the 2-core machine, a thread-pool round trip and the file system's work for the
 * second file: about a seventh of the daemon's CPU per CreateKey.)
 * Pipelining: the commit engine may hand over the next group while the last one's flush runs (two at most). Its
 * journal lines and WAL record are written right after the last group's, with the next commit number, and its flush
 * started at once; each group is confirmed only after the group before it. When a group fails (a write or its flush),
 * every group written after it fails too (they were checked against it), appends are refused until all groups in
 * flight have settled, and the WAL and then the journal are cut back to the last confirmed group. The writes of a
 * group are synchronous and checked against that refusal first, so no group is written after a cut-back began; and a
 * crash before the cut-back leaves a WAL whose records still follow one another (a group's record is never written
 * without the records before it), which recovery replays like any unacknowledged tail: as if those commits had
 * succeeded, their callers having had no answer.
 * A crash before the WAL record is whole leaves journal bytes past the committed length: recovery moves them
 * aside. A crash after it may leave the journal lines of any commit still in the WAL short or zero-filled:
 * recovery rewrites them from the WAL records. A failed write or flush is cut off again (journal only after the
 * WAL is cut: a WAL record that might survive must keep its journal lines), and if even that fails the store
 * refuses further commits.
 *
 * Shard files are rewritten from memory by a checkpoint when the WAL has grown past a threshold proportional to
 * the data: the WAL moves to a new segment, the shards changed since the last checkpoint are written (temp file,
 * fsync, rename, one fsync of the folder), the journal is flushed, and only then are the older segments deleted.
 * Per commit, that costs a bounded multiple of the commit's own size however many records the store holds.
 *
 * Recovery on open: load the shard files, replay every WAL segment (replay is idempotent), cut a torn last
 * record, then reconcile the journal with the committed length and the WAL's copy of its newest lines. Damage a
 * crash cannot explain (a gap in the segments, a bad record followed by good ones, a journal missing lines from
 * before the WAL's, or lines that differ from the WAL's copy other than by being absent or zero-filled) is
 * `StoreCorruptError`: the daemon must not start on a store that lost or altered committed audit records.
 */
import { mkdir, open, readdir, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Low } from "lowdb";
import {
  EMPTY_JOURNAL_HEAD,
  StoreClosedError,
  StoreCorruptError,
  StoreError,
  StoreIoError,
  type CommitRequest,
  type CommitResult,
  type JournalHead,
  type JournalSealer,
  type JsonValue,
  type ListOptions,
  type ListResult,
  type Store,
  type StoredRecord,
} from "../store.js";
import { CommitEngine, type PersistBatch } from "../memory/commit-engine.js";
import { clampPageSize, journalRange } from "../memory/memory-store.js";
import { RecordTable } from "../memory/record-table.js";
import { AppendFile } from "./append-file.js";
import { DurableJsonFile, fileSize, syncDirectory } from "./durable-file.js";
import { InjectedFaultError, type StoreFaults } from "./faults.js";
import { lockDirectory } from "./dir-lock.js";
import { JournalFile } from "./journal-file.js";
import { listShardFiles, shardDb, shardPath } from "./shard-file.js";
import { encodeCommit, encodeHeader, listSegments, readSegment, segmentPath, type WalState } from "./wal.js";

export interface LowdbStoreOptions {
  /** Directory of this store; created if missing. */
  readonly dir: string;
  /** Seals journal entries into `audit.jsonl`. Without it the store has no journal file and rejects entries. */
  readonly sealer?: JournalSealer;
  /** Number of shard files, fixed when the store is created (an existing store keeps its own). Default 512. */
  readonly shardCount?: number;
  /**
   * A checkpoint starts once the WAL exceeds the larger of this and `checkpointDataRatio` × data size. Default 64 KiB
   * per shard (32 MiB with 512 shards): a checkpoint rewrites every shard a commit touched, and keys hash evenly, so
   * in a small store it creates, fsyncs and renames nearly every shard file; with less WAL per shard that fixed cost
   * per file was a fifth of a small CreateKey's CPU. Recovery replays at most this much WAL (about 0.5 s for 32 MiB).
   */
  readonly checkpointMinBytes?: number;
  /**
   * See `checkpointMinBytes`. Default 0.25: a checkpoint rewrites about four times the bytes logged since the last
   * one (a constant per commit, whatever the store's size), and a crash replays at most a quarter of the data.
   */
  readonly checkpointDataRatio?: number;
  /** Test-only fault injection (faults.ts). */
  readonly faults?: StoreFaults;
}

export interface LowdbStoreStats {
  readonly records: number;
  readonly shardCount: number;
  /** Bytes in the active WAL segment. */
  readonly walBytes: number;
  /** The WAL size at which the next checkpoint starts. */
  readonly checkpointThresholdBytes: number;
  readonly checkpoints: number;
  /** The last checkpoint failure, if the last checkpoint failed (its shards are retried by the next one). */
  readonly checkpointError?: unknown;
}

interface StoreMeta {
  readonly format: string;
  readonly shardCount: number;
}

const META_FORMAT = "mcko-lowdb-store/1";
const DEFAULT_SHARD_COUNT = 512;
const SHARD_LOAD_CONCURRENCY = 16;
/** See `LowdbStoreOptions.checkpointMinBytes`. */
const CHECKPOINT_MIN_BYTES_PER_SHARD = 64 * 1024;
/** Shard files written at once by a checkpoint: concurrent fsyncs share the file system's journal commits. */
const SHARD_WRITE_CONCURRENCY = 8;

interface Paths {
  readonly dir: string;
  readonly shards: string;
  readonly wal: string;
  readonly meta: string;
  readonly journal: string;
  readonly rolledBack: string;
}

/** A group's record written to the WAL, its flush started. */
interface Appended {
  readonly wal: AppendFile;
  readonly walEnd: number;
  readonly state: WalState;
  readonly flushed: Promise<void>;
}

/** A write of a group's bytes failed: some may be in the files. */
class AppendFailedError extends Error {
  override name = "AppendFailedError";
  constructor(cause: unknown) {
    super("append failed", { cause });
  }
}

interface ActiveSegment {
  readonly number: number;
  readonly file: AppendFile;
  readonly headerBytes: number;
}

interface Parts {
  readonly paths: Paths;
  readonly table: RecordTable;
  readonly state: WalState;
  readonly segment: ActiveSegment;
  /** Shards changed by the replayed WAL: the next checkpoint must write them before it drops the segments. */
  readonly dirty: Set<number>;
  readonly journal: JournalFile | undefined;
  readonly unlock: () => Promise<void>;
  readonly sealer: JournalSealer | undefined;
  readonly faults: StoreFaults | undefined;
  readonly checkpointMinBytes: number;
  readonly checkpointDataRatio: number;
}

export class LowdbStore implements Store {
  readonly #paths: Paths;
  readonly #table: RecordTable;
  readonly #engine: CommitEngine;
  readonly #journal: JournalFile | undefined;
  readonly #unlock: () => Promise<void>;
  readonly #faults: StoreFaults | undefined;
  readonly #checkpointMinBytes: number;
  readonly #checkpointDataRatio: number;
  #state: WalState;
  #segment: ActiveSegment;
  /** Serialises WAL access between the commit writer and checkpoint rotation. */
  #walLock: Promise<void> = Promise.resolve();
  /** Shards changed since the current segment began (or by a checkpoint that failed). */
  #dirty: Set<number>;
  #checkpoint: Promise<void> | undefined;
  #checkpoints = 0;
  #checkpointError: unknown;
  #dataBytes: number;
  /** Set when a failed commit could not be cut off again: the files may hold it, so no further commit is safe. */
  #failure: unknown;
  #closing: Promise<void> | undefined;
  readonly #reads = new Set<Promise<string[]>>();
  /** State after the newest group written; equal to `#state` when no group is in flight. */
  #written: WalState;
  /** Groups handed to `#persist` and not yet settled (the commit engine keeps at most two). */
  #inFlight = 0;
  /** Settles with whether the newest group handed to `#persist` committed. */
  #tail: Promise<boolean> = Promise.resolve(true);
  /** The same for the newest group whose bytes were written (or whose write failed). */
  #lastAppended: Promise<boolean> = Promise.resolve(true);
  /** Set when a group failed while later ones may be in flight: appends are refused until all have settled. */
  #isPoisoned = false;

  private constructor(parts: Parts) {
    this.#paths = parts.paths;
    this.#table = parts.table;
    this.#state = parts.state;
    this.#written = parts.state;
    this.#segment = parts.segment;
    this.#dirty = parts.dirty;
    this.#journal = parts.journal;
    this.#unlock = parts.unlock;
    this.#faults = parts.faults;
    this.#checkpointMinBytes = parts.checkpointMinBytes;
    this.#checkpointDataRatio = parts.checkpointDataRatio;
    this.#dataBytes = estimateDataBytes(parts.table);
    this.#engine = new CommitEngine({
      table: parts.table,
      sealer: parts.sealer,
      head: parts.state.head,
      persister: { persist: (batch) => this.#persist(batch) },
    });
  }

  /** Opens the store in `options.dir`, creating it if the directory holds none, and recovers from any crash. */
  static async open(options: LowdbStoreOptions): Promise<LowdbStore> {
    const dir = resolve(options.dir);
    const paths: Paths = {
      dir,
      shards: join(dir, "shards"),
      wal: join(dir, "wal"),
      meta: join(dir, "store.json"),
      journal: join(dir, "audit.jsonl"),
      rolledBack: join(dir, "audit.rolledback.jsonl"),
    };
    await mkdir(paths.shards, { recursive: true });
    await mkdir(paths.wal, { recursive: true });
    await syncDirectory(dir);
    const unlock = await lockDirectory(join(dir, "store.lock"));
    try {
      return await LowdbStore.#recover(paths, options, unlock);
    } catch (error) {
      await unlock();
      throw error;
    }
  }

  static async #recover(paths: Paths, options: LowdbStoreOptions, unlock: () => Promise<void>): Promise<LowdbStore> {
    await removeTempFiles(paths.dir);
    await removeTempFiles(paths.shards);
    const meta = await openMeta(paths, options.shardCount ?? DEFAULT_SHARD_COUNT);
    const table = new RecordTable(meta.shardCount, false);
    const shardFiles = await listShardFiles(paths.shards);
    await loadShards(paths.shards, shardFiles, table);
    const { state, segment, dirty, walJournalLines } = await replayWal(paths, table, shardFiles.length > 0, options.faults);
    table.buildIndex();

    let journal: JournalFile | undefined;
    try {
      if (options.sealer !== undefined || state.journalBytes > 0 || (await fileSize(paths.journal)) !== undefined) {
        journal = await JournalFile.open(
          paths.journal,
          paths.rolledBack,
          { bytes: state.journalBytes, lines: state.head.seq },
          walJournalLines,
          options.faults,
        );
      }
    } catch (error) {
      await segment.file.close();
      throw error;
    }
    return new LowdbStore({
      paths,
      table,
      state,
      segment,
      dirty,
      journal,
      unlock,
      sealer: options.sealer,
      faults: options.faults,
      checkpointMinBytes: options.checkpointMinBytes ?? CHECKPOINT_MIN_BYTES_PER_SHARD * meta.shardCount,
      checkpointDataRatio: options.checkpointDataRatio ?? 0.25,
    });
  }

  async get<T = JsonValue>(key: string): Promise<StoredRecord<T> | undefined> {
    this.#checkOpen();
    return this.#table.get<T>(key);
  }

  async list<T = JsonValue>(prefix: string, options: ListOptions): Promise<ListResult<T>> {
    this.#checkOpen();
    return this.#table.list<T>(prefix, clampPageSize(options.pageSize), options.startAfter);
  }

  async count(prefix: string): Promise<number> {
    this.#checkOpen();
    return this.#table.count(prefix);
  }

  async commit(request: CommitRequest): Promise<CommitResult> {
    this.#checkOpen();
    return this.#engine.commit(request);
  }

  async journalHead(): Promise<JournalHead> {
    this.#checkOpen();
    return this.#engine.head;
  }

  async readJournal(fromSeq: number, limit: number): Promise<string[]> {
    this.#checkOpen();
    const { from, to } = journalRange(fromSeq, limit, this.#engine.head.seq);
    if (this.#journal === undefined) return [];
    const read = this.#journal.read(from, to);
    // close() waits for reads in flight before it closes the file under them.
    this.#reads.add(read);
    try {
      return await read;
    } finally {
      this.#reads.delete(read);
    }
  }

  stats(): LowdbStoreStats {
    return {
      records: this.#table.size,
      shardCount: this.#table.shardCount,
      walBytes: this.#segment.file.end,
      checkpointThresholdBytes: this.#checkpointThreshold(),
      checkpoints: this.#checkpoints,
      ...(this.#checkpointError === undefined ? {} : { checkpointError: this.#checkpointError }),
    };
  }

  /** Resolves when queued commits have settled and no checkpoint is running (benchmarks, tests). */
  async idle(): Promise<void> {
    await this.#engine.idle();
    while (this.#checkpoint !== undefined) await this.#checkpoint;
  }

  /** Runs a checkpoint now and waits for it (tests, benchmarks, and before a backup copies the files). */
  async checkpoint(): Promise<void> {
    this.#checkOpen();
    await this.#checkpointNow();
  }

  /**
   * Lets queued commits finish, writes a final checkpoint (so the next open replays little), and closes the
   * files. Every call made after `close()` began rejects with `StoreClosedError`.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#engine.idle();
      await this.#checkpointNow().catch(() => undefined);
      await Promise.allSettled([...this.#reads]);
      await this.#segment.file.close();
      await this.#journal?.close();
      await this.#unlock();
    })();
    return this.#closing;
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new StoreClosedError();
  }

  async #checkpointNow(): Promise<void> {
    await this.#withWal(async () => {
      // A new segment starts from the committed state: the groups written so far settle first (those waiting for
      // the WAL lock are not written yet, and their settling waits for us).
      await this.#lastAppended;
      await this.#checkpoint;
      if (this.#failure !== undefined) return;
      if (this.#dirty.size === 0 && this.#segment.file.end === this.#segment.headerBytes) return;
      await this.#startCheckpoint();
    });
    await this.#checkpoint;
  }

  #withWal<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#walLock.then(fn);
    this.#walLock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * The persister's entry (see "Pipelining" in the file comment). Groups arrive in commit order, the next one
   * possibly before the last has settled; each settles after the one before it, and fails if that one failed.
   */
  #persist(batch: PersistBatch): Promise<void> {
    // With nothing in flight, a failure before does not concern this group (the engine checked it afresh).
    if (this.#inFlight === 0) {
      this.#isPoisoned = false;
      this.#tail = Promise.resolve(true);
    }
    this.#inFlight++;
    const previous = this.#tail;
    const outcome = this.#persistAfter(batch, previous, () => {
      this.#lastAppended = tail;
    });
    const tail = outcome.then(
      () => true,
      () => false,
    );
    this.#tail = tail;
    return outcome.finally(() => {
      this.#inFlight--;
    });
  }

  async #persistAfter(batch: PersistBatch, previous: Promise<boolean>, onAppended: () => void): Promise<void> {
    let appended: Appended;
    try {
      appended = await this.#withWal(() => this.#append(batch, previous, onAppended));
    } catch (error) {
      if (!(error instanceof AppendFailedError)) throw error;
      // Some of the group's bytes may be in the files: cut them off, but not before the groups ahead have settled
      // (the cut goes back to the committed end, which must include those that commit).
      await previous;
      await this.#cutBack();
      throw new StoreIoError("writing the WAL or the audit journal failed; nothing was committed", { cause: error.cause });
    }
    let failure: unknown;
    try {
      await appended.flushed;
    } catch (error) {
      this.#isPoisoned = true;
      failure = new StoreIoError("flushing the WAL failed; nothing was committed", { cause: error });
    }
    if (!(await previous)) {
      this.#isPoisoned = true;
      failure ??= new StoreIoError("an earlier commit written ahead of this one failed; nothing of this one was committed");
    }
    if (failure !== undefined) {
      await this.#cutBack();
      throw failure;
    }
    // Step 4 happens in the commit engine once this resolves.
    appended.wal.confirm(appended.walEnd);
    this.#journal?.confirm(batch.journalLines, appended.state.journalBytes);
    this.#state = appended.state;
    for (const op of batch.ops) this.#dirty.add(this.#table.shardOf(op.key));
  }

  /**
   * Steps 1–2 of the commit, and step 3 started (see the file comment). Runs under the WAL lock. From the checks on,
   * it runs without a pause (the writes are synchronous), so no cut-back can fall between its writes.
   */
  async #append(batch: PersistBatch, previous: Promise<boolean>, onAppended: () => void): Promise<Appended> {
    if (this.#checkpoint === undefined && this.#segment.file.end >= this.#checkpointThreshold()) {
      // A new segment starts from the committed state: the groups ahead must settle first.
      if (await previous) await this.#startCheckpoint();
    }
    if (this.#failure !== undefined) {
      throw new StoreIoError("the store refuses commits after an I/O failure it could not undo", { cause: this.#failure });
    }
    if (this.#isPoisoned) {
      throw new StoreIoError("an earlier commit written ahead of this one failed; nothing of this one was committed");
    }
    const journal = this.#journal;
    const lines = batch.journalLines;
    if (lines.length > 0 && journal === undefined) throw new StoreError("this store has no journal");
    const wal = this.#segment.file;
    let state: WalState;
    let walEnd: number;
    try {
      const journalBytes = lines.length > 0 ? journal!.append(lines) : this.#written.journalBytes;
      state = { commitSeq: this.#written.commitSeq + 1, head: batch.head, journalBytes };
      walEnd = wal.write(encodeCommit(batch.ops, lines, state));
    } catch (error) {
      this.#isPoisoned = true;
      onAppended();
      throw new AppendFailedError(error);
    }
    this.#written = state;
    onAppended();
    // Only the WAL is flushed: it holds the journal lines too (see the file comment).
    const flushed = wal.sync();
    flushed.catch(() => undefined); // awaited by #persistAfter; this only keeps it from counting as unhandled
    return { wal, walEnd, state, flushed };
  }

  /**
   * Cuts the WAL, then the journal, back to their committed ends: every group written and not confirmed is gone
   * (journal only after the WAL: a WAL record that might survive must keep its journal lines).
   */
  async #cutBack(): Promise<void> {
    this.#written = this.#state;
    if ((await this.#undo(this.#segment.file)) && this.#journal !== undefined) await this.#undo(this.#journal);
  }

  /** Cuts a failed append off; on failure the store stops committing. Returns whether the cut succeeded. */
  async #undo(file: { rollback(): Promise<void> }): Promise<boolean> {
    try {
      await file.rollback();
      return true;
    } catch (error) {
      this.#failure ??= error;
      return false;
    }
  }

  #checkpointThreshold(): number {
    return Math.max(this.#checkpointMinBytes, this.#checkpointDataRatio * this.#dataBytes);
  }

  /**
   * Moves the WAL to a new segment (under the WAL lock) and starts writing the dirty shards in the background.
   * Never throws: a checkpoint that cannot start or finish leaves the old segments in place, which is safe.
   */
  async #startCheckpoint(): Promise<void> {
    const next = this.#segment.number + 1;
    let segment: ActiveSegment;
    try {
      segment = await createSegment(this.#paths.wal, next, this.#state, this.#faults);
    } catch (error) {
      this.#checkpointError = error;
      // A half-made segment with a valid header would contradict commits written to the old one.
      await unlink(segmentPath(this.#paths.wal, next))
        .then(() => syncDirectory(this.#paths.wal))
        .catch((e: unknown) => {
          if ((e as { code?: unknown }).code !== "ENOENT") this.#failure ??= e;
        });
      return;
    }
    const old = this.#segment;
    this.#segment = segment;
    await old.file.close().catch(() => undefined);
    const dirty = this.#dirty;
    this.#dirty = new Set();
    this.#checkpoint = this.#writeShards(dirty, next).finally(() => {
      this.#checkpoint = undefined;
    });
  }

  /** Writes the shards, then drops the segments before `keepFrom`: they are no longer needed for recovery. */
  async #writeShards(dirty: ReadonlySet<number>, keepFrom: number): Promise<void> {
    try {
      const queue = [...dirty].sort((a, b) => a - b);
      const writer = async (): Promise<void> => {
        for (let shard = queue.shift(); shard !== undefined; shard = queue.shift()) {
          if (this.#faults?.inject("checkpoint") !== undefined) throw new InjectedFaultError("checkpoint");
          // Low.write hands the live map to the adapter, which serialises it before its first await.
          await shardDb(this.#paths.shards, shard, this.#table.shard(shard)).write();
        }
      };
      const writers = Array.from({ length: SHARD_WRITE_CONCURRENCY }, writer);
      const outcomes = await Promise.allSettled(writers);
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
      if (failed !== undefined) throw failed.reason;
      await syncDirectory(this.#paths.shards);
      // The older segments hold the only flushed copy of the journal lines written since the last checkpoint.
      await this.#journal?.sync();
      // Oldest first, so a crash in between leaves a contiguous run of segments.
      for (const n of await listSegments(this.#paths.wal)) {
        if (n < keepFrom) await unlink(segmentPath(this.#paths.wal, n));
      }
      await syncDirectory(this.#paths.wal);
      this.#checkpoints++;
      this.#checkpointError = undefined;
      this.#dataBytes = estimateDataBytes(this.#table);
    } catch (error) {
      for (const shard of dirty) this.#dirty.add(shard);
      this.#checkpointError = error;
    }
  }
}

async function openMeta(paths: Paths, shardCount: number): Promise<StoreMeta> {
  const db = new Low<StoreMeta | null>(new DurableJsonFile<StoreMeta | null>(paths.meta), null);
  await db.read();
  if (db.data === null) {
    const hasData =
      (await listSegments(paths.wal)).length > 0 ||
      (await listShardFiles(paths.shards)).length > 0 ||
      ((await fileSize(paths.journal)) ?? 0) > 0;
    if (hasData) throw new StoreCorruptError(`${paths.dir} holds store files but no store.json`);
    if (!Number.isSafeInteger(shardCount) || shardCount < 1 || shardCount > 65536) {
      throw new StoreError(`shardCount must be an integer from 1 to 65536, got ${shardCount}`);
    }
    db.data = { format: META_FORMAT, shardCount };
    await db.write();
  }
  const meta = db.data;
  if (meta.format !== META_FORMAT || !Number.isSafeInteger(meta.shardCount) || meta.shardCount < 1) {
    throw new StoreCorruptError(`${paths.meta} is not a ${META_FORMAT} store`);
  }
  return meta;
}

async function loadShards(shardsDir: string, shards: readonly number[], table: RecordTable): Promise<void> {
  for (const shard of shards) {
    if (shard >= table.shardCount) throw new StoreCorruptError(`${shardPath(shardsDir, shard)} is beyond the shard count`);
  }
  for (let i = 0; i < shards.length; i += SHARD_LOAD_CONCURRENCY) {
    const loaded = await Promise.all(
      shards.slice(i, i + SHARD_LOAD_CONCURRENCY).map(async (shard) => {
        const db = shardDb(shardsDir, shard, new Map());
        await db.read();
        return db.data;
      }),
    );
    for (const records of loaded) for (const [key, entry] of records) table.set(key, entry);
  }
}

/**
 * Replays every segment in order and returns the committed state and the segment to append to. A last segment
 * without a whole header was being created when the process died and holds no commit: it is removed.
 */
async function replayWal(
  paths: Paths,
  table: RecordTable,
  hasShardFiles: boolean,
  faults: StoreFaults | undefined,
): Promise<{ state: WalState; segment: ActiveSegment; dirty: Set<number>; walJournalLines: readonly string[] }> {
  const segments = await listSegments(paths.wal);
  const dirty = new Set<number>();
  // Journal lines of every commit in the WAL, in order: the only ones the journal file may not hold on disk.
  const walJournalLines: string[] = [];
  let state: WalState | undefined;
  let active: { number: number; end: number; headerBytes: number } | undefined;
  for (const [i, n] of segments.entries()) {
    const path = segmentPath(paths.wal, n);
    const isLast = i === segments.length - 1;
    if (i > 0 && n !== segments[i - 1]! + 1) throw new StoreCorruptError(`WAL segment before ${path} is missing`);
    const contents = await readSegment(path);
    const [header, ...commits] = contents.records;
    if (header === undefined && isLast) {
      await unlink(path);
      await syncDirectory(paths.wal);
      break;
    }
    if (header?.type !== "header" || header.segment !== n) throw new StoreCorruptError(`${path} does not start with its header`);
    if (state !== undefined && (header.commitSeq !== state.commitSeq || header.journalBytes !== state.journalBytes)) {
      throw new StoreCorruptError(`${path} does not continue the previous segment`);
    }
    state = header;
    for (const record of commits) {
      if (record.type !== "commit" || record.commitSeq !== state.commitSeq + 1) {
        throw new StoreCorruptError(`${path}: commit ${state.commitSeq + 1} is missing or out of order`);
      }
      for (const op of record.ops) {
        dirty.add(table.shardOf(op.key));
        if (op.kind === "put") table.set(op.key, { version: op.version, json: op.json });
        else table.delete(op.key);
      }
      state = record;
      for (const line of record.journalLines) walJournalLines.push(line);
    }
    if (contents.afterTear !== undefined) {
      // Two pipelined commits were being flushed, and only the second one's record reached the disk whole: neither
      // was acknowledged (the second is confirmed only after the first), so both are part of the torn tail. That
      // explains it only in the last segment, for the commit after the torn one, with never-written (zero) bytes in
      // the torn one; anything else after a tear (an edited or rotted record) is damage.
      const { record: second, unwrittenBefore } = contents.afterTear;
      if (!isLast || !unwrittenBefore || second.type !== "commit" || second.commitSeq !== state.commitSeq + 2) {
        throw new StoreCorruptError(`${path} is damaged at byte ${contents.validBytes}: valid records follow an invalid one`);
      }
    }
    if (contents.validBytes < contents.fileBytes) {
      if (!isLast) throw new StoreCorruptError(`${path} has a damaged tail but is not the last segment`);
      await truncateFile(path, contents.validBytes);
    }
    active = { number: n, end: contents.validBytes, headerBytes: contents.firstRecordBytes };
  }

  const points = { write: "wal-write", sync: "wal-sync", rollback: "wal-rollback" } as const;
  if (state === undefined || active === undefined) {
    // No segment: a new store, or one whose first segment was never completed. Shards would mean lost segments.
    if (hasShardFiles) throw new StoreCorruptError(`${paths.wal} holds no WAL segment but shard files exist`);
    const empty: WalState = { commitSeq: 0, head: EMPTY_JOURNAL_HEAD, journalBytes: 0 };
    const segment = await createSegment(paths.wal, (segments.at(-1) ?? 0) + 1, empty, faults);
    return { state: empty, segment, dirty, walJournalLines: [] };
  }
  const file = await AppendFile.open(segmentPath(paths.wal, active.number), active.end, points, faults);
  return { state, segment: { number: active.number, file, headerBytes: active.headerBytes }, dirty, walJournalLines };
}

/** Creates segment `number` holding only its header, durably (file and directory entry), and opens it. */
async function createSegment(
  walDir: string,
  number: number,
  state: WalState,
  faults: StoreFaults | undefined,
): Promise<ActiveSegment> {
  const path = segmentPath(walDir, number);
  const header = encodeHeader(number, state);
  const fh = await open(path, "w");
  try {
    await fh.write(header, 0, header.length, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await syncDirectory(walDir);
  const file = await AppendFile.open(path, header.length, { write: "wal-write", sync: "wal-sync", rollback: "wal-rollback" }, faults);
  return { number, file, headerBytes: header.length };
}

async function truncateFile(path: string, length: number): Promise<void> {
  const fh = await open(path, "r+");
  try {
    await fh.truncate(length);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Removes temp files a crash left behind (they never hold committed data: the rename is the switch). */
async function removeTempFiles(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name.startsWith(".") && name.endsWith(".tmp")) await unlink(join(dir, name));
  }
}

function estimateDataBytes(table: RecordTable): number {
  let bytes = 0;
  for (let i = 0; i < table.shardCount; i++) {
    for (const [key, entry] of table.shard(i)) bytes += key.length + entry.json.length + 32;
  }
  return bytes;
}
