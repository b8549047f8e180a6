/**
 * Canary: after keys of every algorithm are created, rotated, suspended and destroyed through the daemon (logging at
 * `trace`), no file under the MCKO home — store shards, WAL, internal store, audit log — and no line the daemon
 * logged contains any key's plaintext material, in hex or base64 (at every byte alignment).
 *
 * The material is recovered from the stored blobs with test-only knowledge: on the software backend the master key
 * file; on pkcs11 (MCKO_TEST_HSM=pkcs11) the token itself, unwrapping each blob into a non-sensitive session object
 * in this process and reading its secret part (AES/HMAC value, RSA private exponent, EC private scalar).
 */
import test from "ava";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import { kwpUnwrap } from "../../daemon/src/hsm/kcv.js";
import { readKeyring } from "../../daemon/src/hsm/software/keyring.js";
import { LowdbStore } from "../../daemon/src/store/lowdb/lowdb-store.js";
import type { KeyRecord } from "../../daemon/src/core/keys.js";
import { clientsFor, makeHome, mtls, rpc, startDaemonProcess } from "../support/daemon.js";
import { recoverMaterialsForTest } from "../support/softhsm.js";
import { filesUnder } from "../support/files.js";

/** Every textual form the material could take: hex, and base64/base64url at all three byte alignments. */
function needles(material: Buffer): string[] {
  const out = [material.toString("hex"), material.toString("hex").toUpperCase()];
  for (let shift = 0; shift < 3; shift++) {
    const part = material.subarray(shift);
    const b64 = part.toString("base64").replace(/=+$/, "");
    out.push(b64.slice(0, b64.length - 2), part.toString("base64url").slice(0, b64.length - 2));
  }
  return out.filter((n) => n.length >= 16);
}

test("no key material in the store, the audit log or the daemon's log", async (t) => {
  const home = await makeHome({ logLevel: "trace" });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: "canary", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    const algs = [1, 2, 3, 4, 7, 8, 9, 10, 11] as KeyAlgorithm[];
    for (const alg of algs) {
      const name = `vaults/canary/keys/k${alg}`;
      await rpc(c.keys, c.keys.createKey, { parent: "vaults/canary", keyId: `k${alg}`, key: { name: "", algorithm: alg, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "" }, initialState: 0, requestId: "" });
      await rpc(c.keys, c.keys.rotateKey, { name, etag: "", requestId: "" });
      await rpc(c.keys, c.keys.setKeyState, { name, state: KeyState.KEY_STATE_SUSPENDED, etag: "", reason: "canary" });
      if (alg === 3) {
        await rpc(c.keys, c.keys.setKeyState, { name, state: KeyState.KEY_STATE_DEACTIVATED, etag: "", reason: "canary" });
        await rpc(c.keys, c.keys.getKey, { name });
      }
    }
  } finally {
    c.close();
    await daemon.stop();
  }

  // Recover each version's plaintext from the stored blobs (test-only knowledge, see the header).
  const store = await LowdbStore.open({ dir: join(home.dataDir, "vault") });
  const blobs: Array<{ algorithm: string; blob: Buffer; masterKcv: string }> = [];
  try {
    const page = await store.list<KeyRecord>("key/canary/", { pageSize: 1000 });
    for (const rec of page.records) {
      for (const v of rec.value.versions) {
        if (v.blob === null || v.masterKcv === null) continue;
        blobs.push({ algorithm: rec.value.algorithm, blob: Buffer.from(v.blob, "base64"), masterKcv: v.masterKcv });
      }
    }
  } finally {
    await store.close();
  }
  let materials: Buffer[];
  if (home.token) {
    materials = await recoverMaterialsForTest(home.token, "mcko-master", blobs);
  } else {
    const keyring = await readKeyring(join(home.dir, "master.key"));
    materials = blobs.map((b) => kwpUnwrap(keyring.keys.get(b.masterKcv)!, b.blob));
  }
  t.is(materials.length, 9 * 2, "every version's material was recovered for the search");

  const haystacks = filesUnder(home.dir).map((f) => ({ where: f, text: readFileSync(f).toString("latin1") }));
  haystacks.push({ where: "daemon log", text: daemon.logs() });
  t.true(daemon.logs().includes('"level":10') || daemon.logs().includes('"level":20') || daemon.logs().includes('"level":30'), "the log was captured");
  let hits = 0;
  for (const m of materials) {
    for (const n of needles(m)) {
      for (const h of haystacks) {
        if (h.text.includes(n)) {
          hits++;
          t.log(`material found in ${h.where}`);
        }
      }
    }
  }
  t.is(hits, 0);
  for (const m of materials) m.fill(0);
  home.cleanup();
});
