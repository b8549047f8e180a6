/** Serialises work per key (vault `LockManager`): operations on one resource run one at a time, in call order. */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/**
 * A readers-writer lock per key: many shared holders (e.g. concurrent CreateKey in one vault) or one exclusive
 * holder (DeleteVault), so a vault cannot be deleted while a key is being created in it.
 */
export class KeyedRwLock {
  readonly #state = new Map<string, { readers: number; writer: boolean; queue: Array<{ exclusive: boolean; go: () => void }> }>();

  async shared<T>(key: string, fn: () => Promise<T>): Promise<T> {
    await this.#acquire(key, false);
    try {
      return await fn();
    } finally {
      this.#release(key, false);
    }
  }

  async exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    await this.#acquire(key, true);
    try {
      return await fn();
    } finally {
      this.#release(key, true);
    }
  }

  #entry(key: string) {
    let s = this.#state.get(key);
    if (!s) {
      s = { readers: 0, writer: false, queue: [] };
      this.#state.set(key, s);
    }
    return s;
  }

  #acquire(key: string, exclusive: boolean): Promise<void> {
    const s = this.#entry(key);
    const free = exclusive ? !s.writer && s.readers === 0 && s.queue.length === 0 : !s.writer && !s.queue.some((q) => q.exclusive);
    if (free) {
      if (exclusive) s.writer = true;
      else s.readers += 1;
      return Promise.resolve();
    }
    return new Promise((go) => s.queue.push({ exclusive, go }));
  }

  #release(key: string, exclusive: boolean): void {
    const s = this.#entry(key);
    if (exclusive) s.writer = false;
    else s.readers -= 1;
    while (s.queue.length > 0) {
      const next = s.queue[0]!;
      if (next.exclusive) {
        if (s.readers > 0 || s.writer) break;
        s.queue.shift();
        s.writer = true;
        next.go();
        break;
      }
      if (s.writer) break;
      s.queue.shift();
      s.readers += 1;
      next.go();
    }
    if (!s.writer && s.readers === 0 && s.queue.length === 0) this.#state.delete(key);
  }
}
