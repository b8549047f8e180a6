/**
 * A fixed set of open PKCS#11 sessions. A PKCS#11 session carries per-operation state (C_SignInit … C_SignFinal)
 * and must not run two operations at once, so each backend operation borrows one session for its whole duration;
 * callers beyond the pool size wait in FIFO order. The async pkcs11js calls run on libuv's thread pool; for single
 * calls a few sessions keep the token busy (STACK.md §3), but operations of several calls need as many sessions as
 * operations in flight to keep the pool's threads fed (DEFAULT_SESSION_POOL_SIZE).
 */
import { HsmError } from "../hsm.js";
import type { Handle, Pkcs11 } from "./module.js";

export class SessionPool {
  readonly #pkcs11: Pkcs11;
  readonly #all: readonly Handle[];
  readonly #idle: Handle[];
  readonly #waiters: Array<(session: Handle) => void> = [];
  #closing = false;
  #drained: (() => void) | undefined;

  constructor(pkcs11: Pkcs11, sessions: readonly Handle[]) {
    if (sessions.length === 0) throw new HsmError("HSM_INTERNAL", "a session pool needs at least one session");
    this.#pkcs11 = pkcs11;
    this.#all = [...sessions];
    this.#idle = [...sessions];
  }

  get size(): number {
    return this.#all.length;
  }

  /** Runs `fn` with a session of its own; the session returns to the pool whatever `fn` does. */
  async use<T>(fn: (session: Handle) => Promise<T>): Promise<T> {
    const session = await this.#acquire();
    try {
      return await fn(session);
    } finally {
      this.#release(session);
    }
  }

  /** Waits for running operations to finish, then closes every session. Later `use` calls are rejected. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#idle.length < this.#all.length) {
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
    }
    for (const session of this.#all) {
      try {
        this.#pkcs11.C_CloseSession(session);
      } catch {
        // The token may be gone already; nothing more to release.
      }
    }
  }

  #acquire(): Promise<Handle> {
    if (this.#closing) return Promise.reject(new HsmError("HSM_UNAVAILABLE", "the pkcs11 HSM backend is closed"));
    const session = this.#idle.pop();
    if (session !== undefined) return Promise.resolve(session);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #release(session: Handle): void {
    // Waiters queued before close() were accepted: they still run.
    const next = this.#waiters.shift();
    if (next !== undefined) {
      next(session);
      return;
    }
    this.#idle.push(session);
    if (this.#closing && this.#idle.length === this.#all.length) this.#drained?.();
  }
}
