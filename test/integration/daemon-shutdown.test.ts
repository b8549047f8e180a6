/**
 * Graceful shutdown: on SIGTERM the daemon stops taking new calls (health NOT_SERVING, new calls UNAVAILABLE with
 * reason SHUTTING_DOWN), lets the calls already running finish and be acknowledged, then exits 0.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { KeyAlgorithm, type Key } from "../../protos/gen/mcko/v1/key.js";
import { clientsFor, decodeFailure, makeHome, mtls, rpc, startDaemonProcess } from "../support/daemon.js";

const keyMsg = (algorithm: KeyAlgorithm): Key => ({ name: "", algorithm, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "" });

test("SIGTERM drains in-flight calls, refuses new ones, and exits 0", async (t) => {
  const home = await makeHome({ shutdownGraceMs: 60_000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: "drain", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    // RSA-4096 generation keeps calls busy for a while: SIGTERM arrives while they run.
    const inflight = Array.from({ length: 4 }, (_, i) => rpc(c.keys, c.keys.createKey, { parent: "vaults/drain", keyId: `slow${i}`, key: keyMsg(KeyAlgorithm.KEY_ALGORITHM_RSA_4096), initialState: 0, requestId: "" }, 120_000));
    await new Promise((r) => setTimeout(r, 300));
    daemon.child.kill("SIGTERM");
    // Wait for the daemon to say it is draining (the signal is handled asynchronously).
    for (let i = 0; i < 500 && !/draining/.test(daemon.logs()); i++) await new Promise((r) => setTimeout(r, 20));
    const late = await rpc(c.keys, c.keys.getKey, { name: "vaults/drain/keys/slow0" }, 10_000).then(
      () => undefined,
      (e: grpc.ServiceError) => e.code,
    );
    t.is(late, grpc.status.UNAVAILABLE, "a call made after SIGTERM is refused");
    const results = await Promise.allSettled(inflight);
    const ok = results.filter((r) => r.status === "fulfilled").length;
    const refused = results.filter((r) => r.status === "rejected").map((r) => decodeFailure((r as PromiseRejectedResult).reason as grpc.ServiceError));
    t.true(ok >= 1, "calls running at SIGTERM were completed");
    for (const f of refused) {
      t.is(f.code, grpc.status.UNAVAILABLE, f.message);
    }
    t.is(await daemon.exited, 0);
    t.regex(daemon.logs(), /draining/);
  } finally {
    c.close();
    home.cleanup();
  }
});
