/**
 * A sorted set of record keys for list-by-prefix with paging.
 *
 * Keys live in a list of sorted chunks (at most `MAX_CHUNK` keys each), so an insert or delete moves at most one
 * chunk's worth of elements and a page costs O(log n + page) — a single sorted array would memmove the whole set
 * on every insert, which is what makes a 100,000-key vault slow. Order is JavaScript string order (UTF-16 code
 * units), as the Store contract fixes.
 */

const MAX_CHUNK = 512;

interface Position {
  chunk: number;
  index: number;
}

export class SortedKeySet {
  #chunks: string[][] = [];
  #size = 0;

  /** Builds the set from keys in any order (one sort instead of n inserts: used when loading a store). */
  static fromKeys(keys: Iterable<string>): SortedKeySet {
    // The default sort compares strings by UTF-16 code units, like compareKeys, without calling back into JS.
    const all = Array.from(keys).sort();
    const set = new SortedKeySet();
    for (let i = 0; i < all.length; i += MAX_CHUNK / 2) set.#chunks.push(all.slice(i, i + MAX_CHUNK / 2));
    set.#size = all.length;
    return set;
  }

  get size(): number {
    return this.#size;
  }

  /** Adds `key`; returns false when it was already present. */
  add(key: string): boolean {
    if (this.#chunks.length === 0) {
      this.#chunks.push([key]);
      this.#size = 1;
      return true;
    }
    const c = Math.min(this.#firstChunkWhere((last) => last >= key), this.#chunks.length - 1);
    const chunk = this.#chunks[c]!;
    const i = lowerBound(chunk, (k) => k >= key);
    if (chunk[i] === key) return false;
    chunk.splice(i, 0, key);
    this.#size++;
    if (chunk.length > MAX_CHUNK) this.#chunks.splice(c + 1, 0, chunk.splice(chunk.length >> 1));
    return true;
  }

  /** Removes `key`; returns false when it was absent. */
  delete(key: string): boolean {
    const c = this.#firstChunkWhere((last) => last >= key);
    const chunk = this.#chunks[c];
    if (chunk === undefined) return false;
    const i = lowerBound(chunk, (k) => k >= key);
    if (chunk[i] !== key) return false;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(c, 1);
    return true;
  }

  /**
   * Up to `limit` keys that start with `prefix` and are strictly greater than `startAfter` (when given), in
   * order, plus whether more such keys follow.
   */
  page(prefix: string, limit: number, startAfter?: string): { keys: string[]; hasMore: boolean } {
    const pos =
      startAfter !== undefined && startAfter >= prefix
        ? this.#seek((k) => k > startAfter)
        : this.#seek((k) => k >= prefix);
    const keys: string[] = [];
    let { chunk: c, index: i } = pos;
    while (c < this.#chunks.length) {
      const chunk = this.#chunks[c]!;
      for (; i < chunk.length; i++) {
        const key = chunk[i]!;
        if (!key.startsWith(prefix)) return { keys, hasMore: false };
        if (keys.length === limit) return { keys, hasMore: true };
        keys.push(key);
      }
      c++;
      i = 0;
    }
    return { keys, hasMore: false };
  }

  /** Number of keys starting with `prefix`, in O(log n + number of chunks). */
  countPrefix(prefix: string): number {
    if (prefix === "") return this.#size;
    const start = this.#seek((k) => k >= prefix);
    // Keys below the prefix, then the keys with it, then the rest: "below or inside" holds for a leading run.
    const end = this.#seek((k) => !(k < prefix || k.startsWith(prefix)));
    if (start.chunk === end.chunk) return end.index - start.index;
    let n = this.#chunks[start.chunk]!.length - start.index + end.index;
    for (let c = start.chunk + 1; c < end.chunk; c++) n += this.#chunks[c]!.length;
    return n;
  }

  *[Symbol.iterator](): IterableIterator<string> {
    for (const chunk of this.#chunks) yield* chunk;
  }

  /** First position whose key satisfies the monotone predicate `pred` (false…false true…true). */
  #seek(pred: (key: string) => boolean): Position {
    const c = this.#firstChunkWhere(pred);
    const chunk = this.#chunks[c];
    return chunk === undefined ? { chunk: c, index: 0 } : { chunk: c, index: lowerBound(chunk, pred) };
  }

  /** First chunk whose last key satisfies `pred`, or the number of chunks. */
  #firstChunkWhere(pred: (key: string) => boolean): number {
    let lo = 0;
    let hi = this.#chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const chunk = this.#chunks[mid]!;
      if (pred(chunk[chunk.length - 1]!)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

function lowerBound(keys: readonly string[], pred: (key: string) => boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pred(keys[mid]!)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** UTF-16 code unit order, the Store contract's key order (not `localeCompare`). */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
