/**
 * The in-memory state every backend serves reads from: records hashed into shards, plus a sorted key index.
 *
 * Values are held as their JSON text: it is compact, it is what the files hold, and `JSON.parse` on every read
 * is the cheapest deep copy, so no caller can reach stored state through a returned object.
 */
import type { JsonValue, StoredRecord } from "../store.js";
import { SortedKeySet } from "./sorted-keys.js";

/** One stored record. Immutable: a change replaces the entry, which makes shard snapshots cheap and safe. */
export interface StoredEntry {
  readonly version: number;
  /** `JSON.stringify` of the value. */
  readonly json: string;
}

/** A change as it is logged and applied: the resulting version, never "+1", so replaying it is idempotent. */
export type AppliedOp =
  | { readonly kind: "put"; readonly key: string; readonly version: number; readonly json: string }
  | { readonly kind: "delete"; readonly key: string };

export class RecordTable {
  readonly #shards: Map<string, StoredEntry>[];
  #index: SortedKeySet | undefined;

  /**
   * `indexed: false` starts in loading mode: `set`/`delete` skip the sorted index, and `buildIndex()` sorts once
   * at the end (n inserts into a growing index cost more than one sort of 100,000 keys).
   */
  constructor(shardCount: number, indexed = true) {
    this.#shards = Array.from({ length: shardCount }, () => new Map<string, StoredEntry>());
    this.#index = indexed ? new SortedKeySet() : undefined;
  }

  get shardCount(): number {
    return this.#shards.length;
  }

  get size(): number {
    let n = 0;
    for (const shard of this.#shards) n += shard.size;
    return n;
  }

  shardOf(key: string): number {
    return shardIndex(key, this.#shards.length);
  }

  /** The live map of one shard. Callers must not modify it. */
  shard(index: number): ReadonlyMap<string, StoredEntry> {
    const shard = this.#shards[index];
    if (shard === undefined) throw new RangeError(`no shard ${index}`);
    return shard;
  }

  entry(key: string): StoredEntry | undefined {
    return this.#shards[this.shardOf(key)]!.get(key);
  }

  get<T = JsonValue>(key: string): StoredRecord<T> | undefined {
    const entry = this.entry(key);
    return entry === undefined ? undefined : toRecord<T>(key, entry);
  }

  list<T = JsonValue>(prefix: string, pageSize: number, startAfter?: string): { records: StoredRecord<T>[]; nextStartAfter?: string } {
    const { keys, hasMore } = this.#requireIndex().page(prefix, pageSize, startAfter);
    const records = keys.map((key) => toRecord<T>(key, this.entry(key)!));
    const last = keys[keys.length - 1];
    return hasMore && last !== undefined ? { records, nextStartAfter: last } : { records };
  }

  count(prefix: string): number {
    return this.#requireIndex().countPrefix(prefix);
  }

  set(key: string, entry: StoredEntry): void {
    this.#shards[this.shardOf(key)]!.set(key, entry);
    this.#index?.add(key);
  }

  delete(key: string): void {
    if (this.#shards[this.shardOf(key)]!.delete(key)) this.#index?.delete(key);
  }

  apply(ops: readonly AppliedOp[]): void {
    for (const op of ops) {
      if (op.kind === "put") this.set(op.key, { version: op.version, json: op.json });
      else this.delete(op.key);
    }
  }

  /** Ends loading mode. */
  buildIndex(): void {
    this.#index = SortedKeySet.fromKeys(
      (function* (shards) {
        for (const shard of shards) yield* shard.keys();
      })(this.#shards),
    );
  }

  #requireIndex(): SortedKeySet {
    if (this.#index === undefined) throw new Error("record table is still loading");
    return this.#index;
  }
}

function toRecord<T>(key: string, entry: StoredEntry): StoredRecord<T> {
  return { key, version: entry.version, value: JSON.parse(entry.json) as T };
}

/**
 * FNV-1a (32 bit) over the key's UTF-16 code units, modulo the shard count. It decides which shard file holds a
 * key, so it must never change for an existing store (the shard count is recorded in the store's meta file).
 */
export function shardIndex(key: string, shardCount: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shardCount;
}
