/**
 * An append-only file with an explicit committed end. Appends go by position (not O_APPEND) after the committed
 * end and after any appends written but not yet confirmed (a commit pipeline keeps up to two in flight); a
 * rollback cuts the file back to the committed end and the next append goes there, so the bytes of failed appends
 * are cut or overwritten even when truncating them failed, and the file never holds a committed byte after an
 * uncommitted one.
 */
import { writeSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { InjectedFaultError, type FaultPoint, type StoreFaults } from "./faults.js";

export interface AppendFaultPoints {
  readonly write: FaultPoint;
  readonly sync: FaultPoint;
  readonly rollback: FaultPoint;
}

export class AppendFile {
  readonly path: string;
  readonly #fh: FileHandle;
  readonly #faults: StoreFaults | undefined;
  readonly #points: AppendFaultPoints;
  #end: number;
  /** Where the next append goes: the committed end plus the appends written since and not cut off. */
  #written: number;

  private constructor(path: string, fh: FileHandle, end: number, faults: StoreFaults | undefined, points: AppendFaultPoints) {
    this.path = path;
    this.#fh = fh;
    this.#end = end;
    this.#written = end;
    this.#faults = faults;
    this.#points = points;
  }

  /** Opens an existing file whose committed content ends at `end` (recovery has cut anything after it). */
  static async open(path: string, end: number, points: AppendFaultPoints, faults?: StoreFaults): Promise<AppendFile> {
    return new AppendFile(path, await open(path, "r+"), end, faults, points);
  }

  /** Committed length in bytes. */
  get end(): number {
    return this.#end;
  }

  /**
   * Writes `data` after what was written before, without fsync, synchronously (see `writeFully`); returns the new
   * end, not yet committed. On failure (here or in the `sync` that must follow) the caller must `rollback()`, once
   * the appends before this one have been confirmed or cut: some of the bytes may be in the file.
   */
  write(data: Buffer): number {
    const action = this.#faults?.inject(this.#points.write);
    if (action === "partial") {
      writeFully(this.#fh, data.subarray(0, data.length >> 1), this.#written);
      throw new InjectedFaultError(this.#points.write);
    }
    if (action !== undefined) throw new InjectedFaultError(this.#points.write);
    writeFully(this.#fh, data, this.#written);
    this.#written += data.length;
    return this.#written;
  }

  /** Fsyncs what `write` wrote (all of it, whichever call of `write` it follows). */
  async sync(): Promise<void> {
    const action = this.#faults?.inject(this.#points.sync);
    if (action !== undefined && action !== "late") throw new InjectedFaultError(this.#points.sync);
    // datasync also flushes the size change, which is all the metadata a reader needs.
    await this.#fh.datasync();
    if (action === "late") throw new InjectedFaultError(this.#points.sync);
  }

  /** Writes `data` at `position` (inside or right after the committed part) and fsyncs it; recovery only. */
  async rewrite(data: Buffer, position: number): Promise<void> {
    writeFully(this.#fh, data, position);
    await this.#fh.datasync();
  }

  /** Makes `end` (returned by `write`) the committed end. */
  confirm(end: number): void {
    this.#end = end;
  }

  /** Cuts the file back to the committed end, durably: every append not confirmed is gone. */
  async rollback(): Promise<void> {
    this.#written = this.#end;
    if (this.#faults?.inject(this.#points.rollback) !== undefined) throw new InjectedFaultError(this.#points.rollback);
    await this.#fh.truncate(this.#end);
    await this.#fh.datasync();
  }

  async read(position: number, length: number): Promise<Buffer> {
    const buffer = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.#fh.read(buffer, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === length ? buffer : buffer.subarray(0, done);
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }
}

/**
 * Synchronous on purpose: a group commit's few kilobytes go to the page cache in microseconds, while each trip
 * through libuv's thread pool costs two thread hand-offs (6% of the daemon's time in a CreateKey profile on a busy
 * machine, for two writes per group). Only the fsync, which waits for the disk, runs in the pool. Being
 * synchronous also means a commit's appends cannot interleave with another's or with a rollback.
 */
function writeFully(fh: FileHandle, data: Buffer, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(fh.fd, data, done, data.length - done, position + done);
}
