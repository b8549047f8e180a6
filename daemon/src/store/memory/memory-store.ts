/**
 * `MemoryStore`: the Store contract held in memory, for development and tests. It has the same semantics as the
 * lowdb backend (versions, optimistic checks, group commit, sealed journal, copies on read) but nothing survives
 * the process.
 */
import {
  EMPTY_JOURNAL_HEAD,
  StoreClosedError,
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
import { CommitEngine, type PersistBatch } from "./commit-engine.js";
import { RecordTable } from "./record-table.js";

export interface MemoryStoreOptions {
  /** Seals journal entries; without it a commit carrying journal entries is rejected. */
  readonly sealer?: JournalSealer;
}

export class MemoryStore implements Store {
  readonly #table: RecordTable;
  readonly #engine: CommitEngine;
  readonly #journal: string[] = [];
  #isClosed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#table = new RecordTable(1);
    this.#engine = new CommitEngine({
      table: this.#table,
      sealer: options.sealer,
      head: EMPTY_JOURNAL_HEAD,
      persister: {
        persist: async (batch: PersistBatch) => {
          for (const line of batch.journalLines) this.#journal.push(line);
        },
      },
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
    return this.#journal.slice(from - 1, to - 1);
  }

  /** Waits for queued commits to settle; every later call rejects with `StoreClosedError`. */
  async close(): Promise<void> {
    if (this.#isClosed) return;
    this.#isClosed = true;
    await this.#engine.idle();
  }

  #checkOpen(): void {
    if (this.#isClosed) throw new StoreClosedError();
  }
}

/** The contract's page size range: 1–1000. */
export function clampPageSize(pageSize: number): number {
  if (!Number.isFinite(pageSize)) return 1000;
  return Math.min(1000, Math.max(1, Math.floor(pageSize)));
}

/** Sequence numbers `from <= seq < to` of `readJournal(fromSeq, limit)` on a journal whose last seq is `lastSeq`. */
export function journalRange(fromSeq: number, limit: number, lastSeq: number): { from: number; to: number } {
  const from = Math.max(1, Math.floor(Number.isFinite(fromSeq) ? fromSeq : 1));
  const count = Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : 0;
  const to = Math.min(lastSeq + 1, from + count);
  return { from, to: Math.max(from, to) };
}
