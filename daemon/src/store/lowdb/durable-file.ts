/**
 * Durable whole-file replacement for lowdb. lowdb's own adapters (steno) are atomic but never fsync (STACK.md
 * gotcha 17), so a power loss can leave an empty or old file after `write()` resolved. This adapter writes a temp
 * file, fsyncs it, renames it over the target and (unless the caller batches that step) fsyncs the directory, so
 * that when `write()` resolves the new content is the file's content after any crash, and before that the old
 * content is.
 */
import { open, readFile, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Adapter } from "lowdb";

export interface DurableFileOptions {
  /**
   * Fsync the directory after the rename (default true). A caller that replaces many files in one directory may
   * pass false and call `syncDirectory` once afterwards, before it relies on the renames.
   */
  readonly syncDirectory?: boolean;
}

/** Text adapter: `read()` gives the file's text or null when it does not exist. */
export class DurableTextFile implements Adapter<string> {
  readonly path: string;
  readonly #tempPath: string;
  readonly #syncDirectory: boolean;

  constructor(path: string, options: DurableFileOptions = {}) {
    this.path = path;
    // Same directory as the target, so the rename is atomic; dot-prefixed like steno's, removed by recovery.
    this.#tempPath = join(dirname(path), `.${basename(path)}.tmp`);
    this.#syncDirectory = options.syncDirectory ?? true;
  }

  async read(): Promise<string | null> {
    try {
      return await readFile(this.path, "utf8");
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  /** One write at a time per file: the temp name is fixed. */
  async write(text: string): Promise<void> {
    const fh = await open(this.#tempPath, "w");
    try {
      await fh.writeFile(text, "utf8");
      await fh.sync();
    } catch (error) {
      await fh.close().catch(() => undefined);
      await unlink(this.#tempPath).catch(() => undefined);
      throw error;
    }
    await fh.close();
    await rename(this.#tempPath, this.path);
    if (this.#syncDirectory) await syncDirectory(dirname(this.path));
  }
}

/** JSON adapter over `DurableTextFile`, with the (de)serialisation given by the caller. */
export class DurableJsonFile<T> implements Adapter<T> {
  readonly #file: DurableTextFile;
  readonly #parse: (text: string) => T;
  readonly #stringify: (data: T) => string;

  constructor(
    path: string,
    options: DurableFileOptions & { parse?: (text: string) => T; stringify?: (data: T) => string } = {},
  ) {
    this.#file = new DurableTextFile(path, options);
    this.#parse = options.parse ?? ((text) => JSON.parse(text) as T);
    this.#stringify = options.stringify ?? ((data) => `${JSON.stringify(data, null, 2)}\n`);
  }

  async read(): Promise<T | null> {
    const text = await this.#file.read();
    return text === null ? null : this.#parse(text);
  }

  /** Serialises synchronously, before the first await: the data may change while the write is in flight. */
  write(data: T): Promise<void> {
    let text: string;
    try {
      text = this.#stringify(data);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#file.write(text);
  }
}

/** Makes the directory's entries (created, renamed, removed files) durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function isNotFound(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "ENOENT";
}

/** Size of the file at `path`, or undefined when there is none. */
export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}
