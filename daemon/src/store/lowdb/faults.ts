/**
 * Test-only fault injection for the lowdb store's commit and checkpoint I/O. Production code never passes
 * `faults`. (Tests run as root, so file permissions cannot make a write fail; this seam can.)
 */

/** The I/O steps a fault can hit, in the order a commit runs them. */
export type FaultPoint =
  /** Writing the group's sealed lines to the audit journal. */
  | "journal-write"
  /** Fsync of the journal, alongside the WAL's (the bytes are in the file). */
  | "journal-sync"
  /** Truncating the journal back after a failed commit. */
  | "journal-rollback"
  /** Writing the group's record to the WAL (the commit point, once flushed). */
  | "wal-write"
  /** Fsync of the WAL, alongside the journal's (the record is in the file and a restart would read it). */
  | "wal-sync"
  /** Truncating the WAL back after a failed commit. */
  | "wal-rollback"
  /** Writing a shard file during a checkpoint. */
  | "checkpoint";

/**
 * `fail`: the step throws before doing anything. `partial`: a write step writes the first half of its bytes and
 * then throws (at other steps it acts as `fail`). `late`: a flush runs and then reports failure, as an fsync that
 * lost a page in writeback does (at other steps it acts as `fail`); meanwhile the next commit may be written.
 */
export type FaultAction = "fail" | "partial" | "late";

export interface StoreFaults {
  /** Called before each step; return an action to make that step fail, or undefined to let it run. */
  inject(point: FaultPoint): FaultAction | undefined;
}

/** The error an injected fault throws (an I/O error as the file system would report it). */
export class InjectedFaultError extends Error {
  override name = "InjectedFaultError";
  readonly code = "EIO";
  constructor(readonly point: FaultPoint) {
    super(`injected I/O fault at ${point}`);
  }
}
