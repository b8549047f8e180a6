import { inspect } from "node:util";

/**
 * Holds plaintext key material or a credential. It never renders its contents: `toJSON`, `toString` and
 * `util.inspect` all give `[REDACTED]`, so a secret that slips into a log line, an error or an audit event
 * shows nothing. `dispose()` zeroes the buffer; call it in `finally` as soon as the plaintext is not needed.
 * After `dispose()` every access throws, so a use-after-zero is a loud bug rather than a silent all-zero key.
 */
export class Secret {
  #bytes: Buffer | undefined;

  private constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }

  /** Takes ownership of `bytes`: the caller must not keep or reuse the buffer. */
  static adopt(bytes: Buffer): Secret {
    return new Secret(bytes);
  }

  /** Copies `bytes` into a fresh buffer the secret owns. The caller still owns (and should zero) its own copy. */
  static copyOf(bytes: Uint8Array): Secret {
    return new Secret(Buffer.from(bytes));
  }

  get length(): number {
    return this.expose().length;
  }

  /** The plaintext, for the narrow code that must hand it to a crypto primitive. Never store the returned reference. */
  expose(): Buffer {
    if (this.#bytes === undefined) throw new Error("secret used after dispose()");
    return this.#bytes;
  }

  /** Runs `fn` with the plaintext, then zeroes it, whatever `fn` does. */
  async use<T>(fn: (bytes: Buffer) => Promise<T> | T): Promise<T> {
    try {
      return await fn(this.expose());
    } finally {
      this.dispose();
    }
  }

  get isDisposed(): boolean {
    return this.#bytes === undefined;
  }

  dispose(): void {
    if (this.#bytes !== undefined) {
      this.#bytes.fill(0);
      this.#bytes = undefined;
    }
  }

  toJSON(): string {
    return "[REDACTED]";
  }

  toString(): string {
    return "[REDACTED]";
  }

  [inspect.custom](): string {
    return "Secret([REDACTED])";
  }
}
