/**
 * The commit path shared by every backend: request validation, the commit queue, group commit, optimistic
 * version checks, journal sealing and in-order application. A backend plugs in a `CommitPersister` that makes a
 * group durable (the memory backend's keeps journal lines in an array; lowdb's writes the journal and the WAL).
 *
 * Ordering: commits are queued in call order. One writer loop takes what is queued as a group, checks each request
 * against the state left by the requests before it (committed state, the groups still being persisted, and the
 * earlier members of the group), seals the journal entries of the accepted ones in order, and hands the group to
 * the persister; only when that resolves, and every group handed over before it has been applied, does it apply the
 * changes to memory and resolve the callers. Readers therefore never see a change that is not yet durable, and a
 * request that fails its checks is rejected alone.
 *
 * Pipelining: up to `PIPELINE_DEPTH` (2) groups are with the persister at once, so the next group is written and its
 * flush started while the last one's flush runs. A group is checked against the groups ahead of it, so if one of
 * them fails it fails too, with nothing committed (the persister guarantees that no later open applies it), and no
 * new group starts until every group in flight has settled. Under 16 concurrent CreateKey callers on one connection
 * the calls otherwise travel as one convoy: the client answers 16 responses with 16 requests, the daemon commits them
 * as one group and both sides wait in turn for each other and for the flush. With a second group in flight the burst
 * splits into two cohorts whose flushes and client work overlap (`npm run bench -- --only daemon`: CreateKey/s ÷
 * echo/s from 0.40–0.44 to 0.50–0.54; pipelining without the early wake below gave nothing, the burst still forming
 * one group).
 *
 * Gathering: a group costs a fixed amount on top of its members (the head signature, the WAL and journal writes,
 * the flush and its thread hand-offs: more than the CPU of three CreateKeys on the 2-core machine), so when fewer
 * commits are queued than the previous group had, the writer waits for them, for at most `GATHER_TURNS` turns of the
 * event loop: requests already read from the sockets reach the queue and share the group. It resumes in the
 * microtask after the commit that makes the number up, not at the end of the turn, so a burst of requests read in
 * one turn is cut into groups of the last group's size and the first one's flush starts while the rest of the burst
 * is still being handled. A lone committer pays those turns (tens of microseconds).
 */
import {
  StoreConflictError,
  StoreError,
  StoreIoError,
  type CommitRequest,
  type CommitResult,
  type JournalEntry,
  type JournalHead,
  type JournalSealer,
} from "../store.js";
import type { AppliedOp, RecordTable, StoredEntry } from "./record-table.js";

/** One group, ready to be made durable. */
export interface PersistBatch {
  /** Changes of the accepted requests, in commit order. */
  readonly ops: readonly AppliedOp[];
  /** Sealed journal lines of the accepted requests, in commit order. */
  readonly journalLines: readonly string[];
  /** Journal head after the group. */
  readonly head: JournalHead;
}

export interface CommitPersister {
  /**
   * Makes the group durable. Groups arrive in commit order, the next one possibly before the last one's promise has
   * settled (up to `PIPELINE_DEPTH` at once); a group must not become durable without the groups before it, and when
   * one fails, every group handed over while it was in flight must fail too. On failure it must leave no trace that
   * a later open would apply, and reject with `StoreIoError`. A call after all earlier ones have settled starts
   * afresh (the engine checked that group against the committed state only).
   */
  persist(batch: PersistBatch): Promise<void>;
}

interface PreparedMutation {
  readonly op: "put" | "delete";
  readonly key: string;
  /** JSON text of a put's value, taken when `commit` was called, so later changes by the caller don't leak in. */
  readonly json?: string;
  readonly expectVersion?: number;
}

interface QueuedCommit {
  readonly mutations: readonly PreparedMutation[];
  readonly journal: readonly JournalEntry[];
  readonly resolve: (result: CommitResult) => void;
  readonly reject: (error: unknown) => void;
}

interface AcceptedCommit {
  readonly item: QueuedCommit;
  readonly versions: Map<string, number>;
  readonly head: JournalHead;
}

/** A group handed to the persister whose outcome is not yet known. */
interface InFlightGroup {
  /** The group's changes (undefined = deleted): later groups are checked against them. */
  readonly overlay: ReadonlyMap<string, StoredEntry | undefined>;
  /** Journal head after the group. */
  readonly head: JournalHead;
  /** Settles after the group was applied and its callers resolved (true), or its callers rejected (false). */
  readonly done: Promise<boolean>;
}

/** A group takes at most this many requests, so one slow group cannot grow without bound. */
const MAX_GROUP = 1024;

/** Event-loop turns a group waits at most for more commits (see "Gathering" above). */
const GATHER_TURNS = 3;

/** Groups handed to the persister and not yet settled, at most (see "Pipelining" above). */
const PIPELINE_DEPTH = 2;

export class CommitEngine {
  readonly #table: RecordTable;
  readonly #sealer: JournalSealer | undefined;
  readonly #persister: CommitPersister;
  #head: JournalHead;
  #queue: QueuedCommit[] = [];
  #writer: Promise<void> = Promise.resolve();
  #isWriting = false;
  /** Size of the last group taken: the number of commits worth waiting a few event-loop turns for. */
  #lastGroupSize = 0;
  /** Oldest first; each one's `done` settles after the one before it. */
  readonly #inFlight: InFlightGroup[] = [];
  /** Set when a group failed: groups checked against it fail too, so no new group starts until all have settled. */
  #isBroken = false;
  /** Wakes the writer, waiting for a turn or a group in flight, once this many commits are queued. */
  #wake: { readonly count: number; readonly resolve: () => void } | undefined;

  constructor(deps: { table: RecordTable; sealer: JournalSealer | undefined; persister: CommitPersister; head: JournalHead }) {
    this.#table = deps.table;
    this.#sealer = deps.sealer;
    this.#persister = deps.persister;
    this.#head = deps.head;
  }

  /** The committed journal head. */
  get head(): JournalHead {
    return this.#head;
  }

  commit(request: CommitRequest): Promise<CommitResult> {
    let mutations: PreparedMutation[];
    let journal: JournalEntry[];
    try {
      ({ mutations, journal } = prepare(request));
      if (journal.length > 0 && this.#sealer === undefined) throw new StoreError("this store has no journal");
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<CommitResult>((resolve, reject) => {
      this.#queue.push({ mutations, journal, resolve, reject });
      const wake = this.#wake;
      if (wake !== undefined && this.#queue.length >= wake.count) {
        this.#wake = undefined;
        wake.resolve();
      }
      if (!this.#isWriting) {
        this.#isWriting = true;
        // Start on the next microtask, so that commits issued in the same turn share the first group too.
        this.#writer = Promise.resolve().then(() => this.#drain());
      }
    });
  }

  /** Resolves when every commit queued so far has settled. */
  async idle(): Promise<void> {
    while (this.#isWriting) await this.#writer;
  }

  async #drain(): Promise<void> {
    try {
      for (;;) {
        const oldest = this.#inFlight[0];
        if (oldest === undefined) {
          this.#isBroken = false;
          if (this.#queue.length === 0) break;
        } else if (this.#isBroken || this.#inFlight.length >= PIPELINE_DEPTH) {
          // After a failure, the groups checked against the failed one settle (and fail) before anything new starts;
          // with the pipeline full, the oldest group settles first.
          await oldest.done;
          continue;
        } else if (this.#queue.length === 0) {
          await Promise.race([oldest.done, this.#queued(1)]);
          continue;
        }
        for (let turn = 0; turn < GATHER_TURNS && this.#queue.length < this.#lastGroupSize; turn++) {
          await Promise.race([new Promise<void>((resolve) => setImmediate(resolve)), this.#queued(this.#lastGroupSize)]);
        }
        // A group failed while we gathered: the groups in flight settle first.
        if (this.#isBroken) continue;
        const group = this.#queue.splice(0, MAX_GROUP);
        this.#lastGroupSize = group.length;
        this.#startGroup(group);
      }
    } finally {
      // Cleared in the same turn as the empty-queue check, so a commit queued later always starts a writer.
      this.#wake = undefined;
      this.#isWriting = false;
    }
  }

  /** Resolves as soon as `count` commits are queued (checked by `commit`, so in the microtask after the enqueue). */
  #queued(count: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = { count, resolve };
    });
  }

  /**
   * Checks the group against the committed state and the groups in flight, seals and signs its journal lines, and
   * hands it to the persister. Its callers settle when it and every group before it have settled.
   */
  #startGroup(group: readonly QueuedCommit[]): void {
    const newest = this.#inFlight.at(-1);
    // Changes of this group's accepted members so far (undefined entry = deleted).
    const overlay = new Map<string, StoredEntry | undefined>();
    const ops: AppliedOp[] = [];
    const journalLines: string[] = [];
    const accepted: AcceptedCommit[] = [];
    let head = newest?.head ?? this.#head;
    const pending = (key: string): StoredEntry | undefined => {
      if (overlay.has(key)) return overlay.get(key);
      for (let i = this.#inFlight.length - 1; i >= 0; i--) {
        const o = this.#inFlight[i]!.overlay;
        if (o.has(key)) return o.get(key);
      }
      return this.#table.entry(key);
    };

    for (const item of group) {
      try {
        const local = new Map<string, StoredEntry | undefined>();
        const itemOps: AppliedOp[] = [];
        const current = (key: string): StoredEntry | undefined => (local.has(key) ? local.get(key) : pending(key));
        for (const m of item.mutations) {
          const version = current(m.key)?.version ?? 0;
          if (m.expectVersion !== undefined && m.expectVersion !== version) {
            throw new StoreConflictError(m.key, m.expectVersion, version);
          }
          if (m.op === "put") {
            const entry = { version: version + 1, json: m.json! };
            local.set(m.key, entry);
            itemOps.push({ kind: "put", key: m.key, ...entry });
          } else {
            local.set(m.key, undefined);
            itemOps.push({ kind: "delete", key: m.key });
          }
        }
        const sealed = item.journal.length > 0 ? this.#seal(item.journal, head) : { lines: [], head };
        // Accepted: fold its changes into the group.
        const versions = new Map<string, number>();
        for (const [key, entry] of local) {
          overlay.set(key, entry);
          if (entry !== undefined) versions.set(key, entry.version);
        }
        ops.push(...itemOps);
        journalLines.push(...sealed.lines);
        head = sealed.head;
        accepted.push({ item, versions, head });
      } catch (error) {
        item.reject(error);
      }
    }
    if (accepted.length === 0) return;
    if (journalLines.length > 0 && this.#sealer?.sign) {
      // One signature per group: the hash chain links every earlier line to this head.
      try {
        head = Object.freeze({ ...this.#sealer.sign(head) });
      } catch (error) {
        const failure = new StoreError("journal sealer failed to sign the head", { cause: error });
        for (const a of accepted) a.item.reject(failure);
        return;
      }
      accepted[accepted.length - 1] = { ...accepted[accepted.length - 1]!, head };
    }

    const persisted: Promise<void> =
      ops.length > 0 || journalLines.length > 0 ? this.#persister.persist({ ops, journalLines, head }) : Promise.resolve();
    const previous = newest?.done;
    const groupHead = head;
    const settle = async (): Promise<boolean> => {
      let failure: unknown;
      try {
        await persisted;
      } catch (error) {
        failure = error instanceof StoreError ? error : new StoreIoError("commit failed", { cause: error });
      }
      const previousCommitted = previous === undefined ? true : await previous;
      if (!previousCommitted && failure === undefined) {
        failure = new StoreIoError("an earlier commit this one was checked against failed; nothing of this one was committed");
      }
      this.#inFlight.shift();
      if (failure !== undefined) {
        this.#isBroken = true;
        for (const a of accepted) a.item.reject(failure);
        return false;
      }
      // Durable: make it visible, all of the group at once (no await in between).
      this.#table.apply(ops);
      this.#head = groupHead;
      for (const a of accepted) a.item.resolve({ versions: a.versions, journalHead: a.head });
      return true;
    };
    this.#inFlight.push({ overlay, head: groupHead, done: settle() });
  }

  #seal(entries: readonly JournalEntry[], prev: JournalHead): { lines: string[]; head: JournalHead } {
    let sealed: { lines: string[]; head: JournalHead };
    try {
      sealed = this.#sealer!.seal(entries, prev);
    } catch (error) {
      throw new StoreError("journal sealer failed", { cause: error });
    }
    const { lines, head } = sealed;
    // Line i of the journal is sequence number i: readJournal and recovery rely on it.
    if (lines.length !== entries.length || head.seq !== prev.seq + lines.length) {
      throw new StoreError(`journal sealer returned ${lines.length} lines ending at seq ${head.seq} after seq ${prev.seq}`);
    }
    for (const line of lines) {
      if (typeof line !== "string" || line.includes("\n") || line.includes("\r")) {
        throw new StoreError("journal sealer returned a line that is not a single line of text");
      }
    }
    return { lines: [...lines], head: Object.freeze({ seq: head.seq, hash: head.hash, signature: head.signature }) };
  }
}

/** Validates a request and copies what the caller could still change. Throws `StoreError`. */
function prepare(request: CommitRequest): { mutations: PreparedMutation[]; journal: JournalEntry[] } {
  if (typeof request !== "object" || request === null || !Array.isArray(request.mutations)) {
    throw new StoreError("commit request needs a mutations array");
  }
  const mutations = request.mutations.map((m, i): PreparedMutation => {
    if (typeof m !== "object" || m === null) throw new StoreError(`mutation ${i} is not an object`);
    if (typeof m.key !== "string" || m.key === "") throw new StoreError(`mutation ${i} needs a non-empty key`);
    if (m.expectVersion !== undefined && !(Number.isSafeInteger(m.expectVersion) && m.expectVersion >= 0)) {
      throw new StoreError(`mutation ${i} (${m.key}): expectVersion must be an integer >= 0`);
    }
    const expect = m.expectVersion === undefined ? {} : { expectVersion: m.expectVersion };
    if (m.op === "delete") return { op: "delete", key: m.key, ...expect };
    if (m.op !== "put") throw new StoreError(`mutation ${i} (${m.key}): unknown op`);
    const json: unknown = JSON.stringify(m.value);
    if (typeof json !== "string") throw new StoreError(`mutation ${i} (${m.key}): value is not JSON`);
    return { op: "put", key: m.key, json, ...expect };
  });
  const entries = request.journal ?? [];
  if (!Array.isArray(entries)) throw new StoreError("journal must be an array");
  const journal = entries.map((entry, i): JournalEntry => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new StoreError(`journal entry ${i} is not an object`);
    }
    return JSON.parse(JSON.stringify(entry)) as JournalEntry;
  });
  return { mutations, journal };
}
