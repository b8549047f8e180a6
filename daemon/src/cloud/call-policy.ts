/**
 * Shared call machinery for connectors: a per-keystore concurrency limit and retries with exponential backoff and
 * full jitter (delay = random × min(max, base × 2^attempt)) on retryable failures, bounded by a deadline.
 */
import { ConnectorError, type CallPolicy } from "./connector.js";

export class Semaphore {
  #free: number;
  readonly #queue: Array<() => void> = [];
  constructor(size: number) {
    this.#free = Math.max(1, size);
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free -= 1;
    else await new Promise<void>((go) => this.#queue.push(go));
    try {
      return await fn();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#free += 1;
    }
  }
}

export function makeCallPolicy(options: { maxConcurrency: number; attemptTimeoutMs: number; deadlineMs: number; random?: () => number }): CallPolicy {
  const sem = new Semaphore(options.maxConcurrency);
  return {
    limit: (fn) => sem.run(fn),
    attemptTimeoutMs: options.attemptTimeoutMs,
    deadlineMs: options.deadlineMs,
    baseDelayMs: 100,
    maxDelayMs: 5_000,
    random: options.random ?? Math.random,
  };
}

/**
 * Runs `attempt` (given an AbortSignal that fires at the attempt timeout) under the limit, retrying retryable
 * `ConnectorError`s until the deadline. The last error is rethrown; a retryable one past the deadline becomes
 * UNAVAILABLE naming the operation.
 *
 * `limitedInside`: the attempt takes the keystore's slot itself (`policy.limit`) around each request it sends, e.g.
 * in the SDK's HTTP stage, so that building, signing and parsing requests happens outside the slot and the limit
 * bounds exactly the requests in flight at the cloud.
 */
export async function callWithRetry<T>(policy: CallPolicy, operation: string, attempt: (signal: AbortSignal) => Promise<T>, options: { limitedInside?: boolean } = {}): Promise<T> {
  const deadline = Date.now() + policy.deadlineMs;
  for (let n = 0; ; n++) {
    try {
      const remaining = deadline - Date.now();
      const signal = AbortSignal.timeout(Math.max(1, Math.min(policy.attemptTimeoutMs, remaining)));
      return await (options.limitedInside ? attempt(signal) : policy.limit(() => attempt(signal)));
    } catch (e) {
      if (!(e instanceof ConnectorError) || !e.details.retryable) throw e;
      const wait = policy.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** n);
      if (Date.now() + wait >= deadline) {
        throw new ConnectorError("UNAVAILABLE", `${operation} did not succeed within ${policy.deadlineMs} ms (${n + 1} attempts): ${e.message}`, { ...e.details, operation, retryable: true });
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
