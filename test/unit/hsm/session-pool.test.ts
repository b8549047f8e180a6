import test from "ava";
import { HsmError } from "../../../daemon/src/hsm/hsm.js";
import type { Pkcs11 } from "../../../daemon/src/hsm/pkcs11/module.js";
import { SessionPool } from "../../../daemon/src/hsm/pkcs11/session-pool.js";

/** Only C_CloseSession is used by the pool. */
function fakePkcs11(closed: Buffer[]): Pkcs11 {
  return { C_CloseSession: (s: Buffer) => void closed.push(s) } as unknown as Pkcs11;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

test("never lends one session to two operations; waiting callers run in FIFO order", async (t) => {
  const sessions = [Buffer.from([1]), Buffer.from([2])];
  const pool = new SessionPool(fakePkcs11([]), sessions);
  const inUse = new Set<string>();
  let maxInFlight = 0;
  const order: number[] = [];
  const gates = Array.from({ length: 6 }, () => deferred());
  const runs = gates.map((gate, i) =>
    pool.use(async (s) => {
      const id = s.toString("hex");
      t.false(inUse.has(id), "session lent twice");
      inUse.add(id);
      maxInFlight = Math.max(maxInFlight, inUse.size);
      order.push(i);
      await gate.promise;
      inUse.delete(id);
      return i;
    }),
  );
  for (const gate of gates) gate.resolve();
  t.deepEqual(await Promise.all(runs), [0, 1, 2, 3, 4, 5]);
  t.is(maxInFlight, 2);
  t.deepEqual(order, [0, 1, 2, 3, 4, 5]);
});

test("a failing operation returns its session", async (t) => {
  const pool = new SessionPool(fakePkcs11([]), [Buffer.from([1])]);
  await t.throwsAsync(pool.use(async () => Promise.reject(new Error("boom"))), { message: "boom" });
  t.is(await pool.use(async () => 7), 7);
});

test("close waits for running and queued operations, closes every session once, then refuses", async (t) => {
  const closed: Buffer[] = [];
  const sessions = [Buffer.from([1]), Buffer.from([2])];
  const pool = new SessionPool(fakePkcs11(closed), sessions);
  const gate = deferred();
  const finished: number[] = [];
  const runs = [0, 1, 2].map((i) =>
    pool.use(async () => {
      await gate.promise;
      finished.push(i);
    }),
  );
  const closing = pool.close();
  t.is(closed.length, 0, "nothing closed while operations run");
  gate.resolve();
  await Promise.all(runs);
  await closing;
  t.deepEqual(finished.sort(), [0, 1, 2]);
  t.deepEqual(closed, sessions);
  const e = await t.throwsAsync(pool.use(async () => 1), { instanceOf: HsmError });
  t.is(e?.reason, "HSM_UNAVAILABLE");
  await pool.close();
  t.is(closed.length, 2);
});
