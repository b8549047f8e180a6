/**
 * The two backends under one master key: the software keyring's master is imported into SoftHSM2 (for this test
 * only), and every blob made by one backend must unwrap, check and re-wrap in the other.
 */
import test from "ava";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkcs11js from "pkcs11js";
import { KEY_ALGORITHMS, type Hsm } from "../../daemon/src/hsm/hsm.js";
import { acquireModule, findSlotByTokenLabel, login, logoutUser, openSession } from "../../daemon/src/hsm/pkcs11/module.js";
import { Pkcs11Hsm } from "../../daemon/src/hsm/pkcs11/pkcs11-hsm.js";
import { SoftwareHsm } from "../../daemon/src/hsm/software/software-hsm.js";
import { Secret } from "../../daemon/src/util/secret.js";
import { createSoftHsmToken, type SoftHsmToken } from "../support/softhsm.js";

const P = pkcs11js;
let token: SoftHsmToken | undefined;
let dir = "";
let software: SoftwareHsm | undefined;
let pkcs11: Pkcs11Hsm | undefined;
let masterKcv = "";

test.before(async () => {
  token = await createSoftHsmToken({ tokenLabel: "mcko-interop" });
  process.env.SOFTHSM2_CONF = token.conf;
  dir = await mkdtemp(join(tmpdir(), "mcko-interop-"));
  const masterKeyFile = join(dir, "master.keyring");
  masterKcv = await SoftwareHsm.initMasterKeyFile(masterKeyFile);
  software = await SoftwareHsm.create({ masterKeyFile, expectedMasterKcv: masterKcv });

  // Import the same master into the token as a non-extractable, sensitive token object.
  const keyHex = /key [0-9a-f]{6} ([0-9a-f]{64})/.exec((await readFile(masterKeyFile)).toString("latin1"))?.[1];
  if (keyHex === undefined) throw new Error("no key in the keyring");
  const value = Buffer.from(keyHex, "hex");
  const pin = Secret.copyOf(Buffer.from(token.pin));
  const mod = acquireModule(token.modulePath);
  const slot = findSlotByTokenLabel(mod, token.tokenLabel);
  const session = openSession(mod, slot);
  login(mod, slot, session, pin, token.tokenLabel);
  try {
    mod.pkcs11.C_CreateObject(session, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
      { type: P.CKA_LABEL, value: "imported-master" },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_PRIVATE, value: true },
      { type: P.CKA_SENSITIVE, value: true },
      { type: P.CKA_EXTRACTABLE, value: false },
      { type: P.CKA_WRAP, value: true },
      { type: P.CKA_UNWRAP, value: true },
      { type: P.CKA_VALUE, value },
    ]);
  } finally {
    value.fill(0);
    mod.pkcs11.C_CloseSession(session);
    logoutUser(mod, slot);
    mod.release();
  }
  pkcs11 = await Pkcs11Hsm.create({
    modulePath: token.modulePath,
    tokenLabel: token.tokenLabel,
    pin,
    masterKeyLabel: "imported-master",
    expectedMasterKcv: masterKcv,
  });
  pin.dispose();
});

test.after.always(async () => {
  await pkcs11?.close();
  await software?.close();
  await token?.cleanup();
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

const both = (): [Hsm, Hsm] => {
  if (software === undefined || pkcs11 === undefined) throw new Error("backends not started");
  return [software, pkcs11];
};

test("the token computes the same master KCV as the software backend", async (t) => {
  const [sw, hw] = both();
  t.is(await hw.masterKeyCheckValue(), masterKcv);
  t.is(await sw.masterKeyCheckValue(), masterKcv);
});

// RSA_3072/4096 only add key-generation time here: RSA_2048 exercises the same PKCS#8 path.
for (const algorithm of KEY_ALGORITHMS.filter((a) => a !== "RSA_3072" && a !== "RSA_4096")) {
  test(`${algorithm}: blobs made by either backend check in the other`, async (t) => {
    const [sw, hw] = both();
    const fromSoftware = await sw.generateKey(algorithm);
    const fromToken = await hw.generateKey(algorithm);
    t.is(await hw.checkValue(fromSoftware), fromSoftware.kcv);
    t.is(await sw.checkValue(fromToken), fromToken.kcv);
    if (algorithm.startsWith("AES_") || algorithm.startsWith("HMAC_")) {
      t.is(fromToken.blob.length, fromSoftware.blob.length, "same RFC 5649 form");
    }
  });
}

test("internal secrets wrapped by either backend unwrap in the other", async (t) => {
  const [sw, hw] = both();
  for (const length of [1, 17, 21, 32, 45]) {
    const value = Buffer.alloc(length, 0xa5);
    const a = await hw.unwrapSecret(await sw.wrapSecret(Secret.copyOf(value)));
    const b = await sw.unwrapSecret(await hw.wrapSecret(Secret.copyOf(value)));
    t.deepEqual(a.expose(), value);
    t.deepEqual(b.expose(), value);
    a.dispose();
    b.dispose();
  }
});
