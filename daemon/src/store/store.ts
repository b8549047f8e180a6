/**
 * The `Store` interface: the vault's durable records and its append-only journal (the audit log).
 * Backends: `lowdb` (embedded default, durable, sharded) and `memory` (a real development backend; not durable).
 * Backends never import `core/`: records are opaque JSON values to them.
 *
 * Contract (test/contract/store.ts runs it against every backend):
 * - Keys are strings such as `vaults/v1/keys/k1`; `list(prefix)` returns records whose key starts with `prefix`,
 *   in ascending key order (UTF-16 code unit order), paged by `startAfter`.
 * - Every record has a `version` (1 on creation, +1 per put). `expectVersion` on a mutation is an optimistic
 *   check: 0 means "must not exist", n means "must exist at version n". One failed check fails the whole commit
 *   with `StoreConflictError` and changes nothing.
 * - `commit` is atomic: all mutations and journal entries of one request become visible and durable together,
 *   or none does. When the promise resolves the change survives a crash (kill -9 or power loss) of the process.
 *   Concurrent commits are serialised in call order and may share one physical write (group commit); a commit
 *   that fails (conflict) does not affect the others in its group.
 * - Journal entries are sealed by the `JournalSealer` given at construction, in commit order, and appended to
 *   the journal in the same durable commit as the mutations. If the journal append fails, the commit fails and
 *   no mutation is applied.
 * - Values are returned as deep copies (or frozen): callers cannot change stored state by mutating results.
 * - All methods are safe to call concurrently. After `close()` every call rejects with `StoreClosedError`.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface StoredRecord<T = JsonValue> {
  readonly key: string;
  readonly version: number;
  readonly value: T;
}

export type Mutation =
  | { readonly op: "put"; readonly key: string; readonly value: JsonValue; readonly expectVersion?: number }
  | { readonly op: "delete"; readonly key: string; readonly expectVersion?: number };

/** One journal (audit) entry before sealing: any JSON object. The sealer adds sequence and hashes. */
export type JournalEntry = { readonly [key: string]: JsonValue };

/** The journal's head after a commit: the last sequence number, its hash and the sealer's signature over it. */
export interface JournalHead {
  readonly seq: number;
  readonly hash: string;
  readonly signature: string;
}

export const EMPTY_JOURNAL_HEAD: JournalHead = Object.freeze({ seq: 0, hash: "", signature: "" });

/**
 * Turns entries into journal lines, chained from `prev`. Pure: it must not keep state, because a commit that
 * fails after sealing is simply dropped and the next one seals from the same `prev` again.
 */
export interface JournalSealer {
  seal(entries: readonly JournalEntry[], prev: JournalHead): { lines: string[]; head: JournalHead };
  /**
   * Optional: signs a head. When present, `seal` may return unsigned heads (empty `signature`) and the store signs
   * once per group commit, the group's last head, before persisting it: one signature covers the whole group
   * through the hash chain. Heads returned to earlier members of a group then carry an empty signature.
   */
  sign?(head: JournalHead): JournalHead;
}

export interface CommitRequest {
  readonly mutations: readonly Mutation[];
  readonly journal?: readonly JournalEntry[];
}

export interface CommitResult {
  /** New version of every put key (deleted keys are absent). */
  readonly versions: ReadonlyMap<string, number>;
  /** Journal head after this commit (unchanged when the request had no journal entries). */
  readonly journalHead: JournalHead;
}

export interface ListOptions {
  /** At most this many records (1–1000; backends clamp). */
  readonly pageSize: number;
  /** Return keys strictly greater than this one. */
  readonly startAfter?: string;
}

export interface ListResult<T = JsonValue> {
  readonly records: StoredRecord<T>[];
  /** Pass as `startAfter` to get the next page; absent at the end. */
  readonly nextStartAfter?: string;
}

export interface Store {
  get<T = JsonValue>(key: string): Promise<StoredRecord<T> | undefined>;
  list<T = JsonValue>(prefix: string, options: ListOptions): Promise<ListResult<T>>;
  /** Number of records under `prefix` (for stats and benchmarks). */
  count(prefix: string): Promise<number>;
  commit(request: CommitRequest): Promise<CommitResult>;
  journalHead(): Promise<JournalHead>;
  /** Journal lines with `fromSeq <= seq < fromSeq + limit`, as stored (sequence numbers start at 1). */
  readJournal(fromSeq: number, limit: number): Promise<string[]>;
  close(): Promise<void>;
}

export class StoreError extends Error {
  override name = "StoreError";
}

export class StoreConflictError extends StoreError {
  override name = "StoreConflictError";
  constructor(
    readonly key: string,
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(`version conflict on ${key}: expected ${expectedVersion}, found ${actualVersion}`);
  }
}

export class StoreClosedError extends StoreError {
  override name = "StoreClosedError";
  constructor() {
    super("store is closed");
  }
}

/** The store's files are unreadable or inconsistent in a way recovery cannot repair; the daemon must not start. */
export class StoreCorruptError extends StoreError {
  override name = "StoreCorruptError";
}

/** An I/O failure while committing (disk full, permission); nothing of the failed commit was applied. */
export class StoreIoError extends StoreError {
  override name = "StoreIoError";
}
