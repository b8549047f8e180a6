/**
 * MasterKeyRotationService in one process on the software backend (memory stores, a temp keyring): a whole
 * rotation, keys changing while it runs, and the resume paths of a rotation interrupted while the HSM made its new
 * master. The same resume paths on SoftHSM2: test/integration/master-key-rotation-resume.test.ts.
 */
import test from "ava";
import { startupMasterKcv } from "../../../daemon/src/core/master-key-rotation.js";
import { actor, interruptedWhileCreating, rotationWorld } from "../../support/rotation-world.js";

test("a rotation re-wraps every version and the internal keys, switches the recorded KCV and destroys the old master", async (t) => {
  const w = await rotationWorld(t, "software");
  const svc = w.service();
  const started = await svc.start(actor);
  t.is(started.state, "REWRAPPING");
  t.is(started.keysTotal, 4);
  await svc.idle();
  const done = await svc.get(started.name.split("/")[1]!);
  t.is(done.state, "DONE");
  t.is(done.keysDone, 4);
  t.is(done.blobsRewrapped, 8);
  await w.checkAllUnder(done.newMasterKcv);
  t.deepEqual(w.errors, []);
  // The next start expects the new master.
  t.deepEqual(await startupMasterKcv(w.internal), { expected: done.newMasterKcv, newerMasterPossible: false });
  const again = await w.restart();
  t.is(await again.masterKeyCheckValue(), done.newMasterKcv);
});

test("keys created and rotated while the rotation starts and runs end up under the new master too", async (t) => {
  const w = await rotationWorld(t, "software");
  const svc = w.service();
  const keys = w.keys();
  // Fired before the start: some generate under the old master and commit after the walk passed them.
  const changes = Array.from({ length: 12 }, (_, i) =>
    i % 3 === 2 ? keys.rotate(actor, "v", `k${i % 4}`, undefined, undefined) : keys.create(actor, { vault: "v", keyId: `n${i}`, algorithm: "AES_256", labels: {} }),
  );
  const started = await svc.start(actor);
  await Promise.all(changes);
  await svc.idle();
  const done = await svc.get(started.name.split("/")[1]!);
  t.is(done.state, "DONE");
  await w.checkAllUnder(done.newMasterKcv, 8 + 12);
  t.deepEqual(w.errors, []);
});

test("interrupted in CREATING after the keyring already named the new master current: the start adopts it and finishes", (t) => interruptedWhileCreating(t, "software", true));
test("interrupted in CREATING before the HSM made the new master: the resume makes it and finishes", (t) => interruptedWhileCreating(t, "software", false));
