/**
 * Starting the pkcs11 backend against SoftHSM2: the refusals a person must be able to act on (wrong PIN, missing
 * token, missing or different master key), `initMasterKey` create/adopt, and proof that the master key cannot be
 * extracted from the token. Serial: the token's login state is process-wide.
 */
import test from "ava";
import pkcs11js from "pkcs11js";
import { HsmError } from "../../daemon/src/hsm/hsm.js";
import { Pkcs11Hsm } from "../../daemon/src/hsm/pkcs11/pkcs11-hsm.js";
import { ckrCode } from "../../daemon/src/hsm/pkcs11/errors.js";
import {
  acquireModule,
  findSlotByTokenLabel,
  login,
  logoutUser,
  openSession,
} from "../../daemon/src/hsm/pkcs11/module.js";
import { Secret } from "../../daemon/src/util/secret.js";
import { rejectsWith } from "../contract/hsm.js";
import { createSoftHsmToken, type SoftHsmToken } from "../support/softhsm.js";

const P = pkcs11js;
let token: SoftHsmToken;
const MASTER = "mcko-master";
let masterKcv = "";

const pinOf = (t: SoftHsmToken): Secret => Secret.copyOf(Buffer.from(t.pin));
const common = (): { modulePath: string; tokenLabel: string; masterKeyLabel: string } => ({
  modulePath: token.modulePath,
  tokenLabel: token.tokenLabel,
  masterKeyLabel: MASTER,
});

test.before(async () => {
  token = await createSoftHsmToken({ tokenLabel: "mcko-start" });
  await token.addToken("mcko-other");
  process.env.SOFTHSM2_CONF = token.conf;
});
test.after.always(async () => {
  await token?.cleanup();
});

test.serial("no master key yet: start refuses with HSM_MASTER_KEY_NOT_FOUND and says how to create one", async (t) => {
  const e = await rejectsWith(t, Pkcs11Hsm.create({ ...common(), pin: pinOf(token) }), "HSM_MASTER_KEY_NOT_FOUND");
  t.regex(e?.message ?? "", /mcko init --hsm pkcs11/);
  await rejectsWith(t, Pkcs11Hsm.initMasterKey({ ...common(), pin: pinOf(token), adopt: true }), "HSM_MASTER_KEY_NOT_FOUND");
});

test.serial("initMasterKey creates the master once; a second create is refused, adopt returns the same KCV", async (t) => {
  masterKcv = await Pkcs11Hsm.initMasterKey({ ...common(), pin: pinOf(token), adopt: false });
  t.regex(masterKcv, /^[0-9a-f]{6}$/);
  const e = await rejectsWith(
    t,
    Pkcs11Hsm.initMasterKey({ ...common(), pin: pinOf(token), adopt: false }),
    "HSM_INVALID_INPUT",
  );
  t.regex(e?.message ?? "", /already has a key labelled "mcko-master"/);
  t.is(await Pkcs11Hsm.initMasterKey({ ...common(), pin: pinOf(token), adopt: true }), masterKcv);
  const hsm = await Pkcs11Hsm.create({ ...common(), pin: pinOf(token), expectedMasterKcv: masterKcv });
  try {
    t.is(await hsm.masterKeyCheckValue(), masterKcv);
    const key = await hsm.generateKey("AES_256");
    t.is(await hsm.checkValue(key), key.kcv);
  } finally {
    await hsm.close();
  }
});

test.serial("a wrong PIN is refused with HSM_LOGIN_FAILED naming the token", async (t) => {
  const e = await rejectsWith(
    t,
    Pkcs11Hsm.create({ ...common(), pin: Secret.copyOf(Buffer.from("0000")) }),
    "HSM_LOGIN_FAILED",
  );
  t.regex(e?.message ?? "", /wrong user PIN/);
  t.regex(e?.message ?? "", /mcko-start/);
  t.false((e?.message ?? "").includes("0000"), "the message never contains the PIN");
});

test.serial("while one backend is logged in, a second with a different PIN is still refused", async (t) => {
  const hsm = await Pkcs11Hsm.create({ ...common(), pin: pinOf(token) });
  try {
    await rejectsWith(t, Pkcs11Hsm.create({ ...common(), pin: Secret.copyOf(Buffer.from("9999")) }), "HSM_LOGIN_FAILED");
    const second = await Pkcs11Hsm.create({ ...common(), pin: pinOf(token) });
    t.is(await second.masterKeyCheckValue(), masterKcv);
    await second.close();
    t.is((await hsm.randomBytes(4)).length, 4, "closing the second backend leaves the first logged in");
  } finally {
    await hsm.close();
  }
});

test.serial("a missing token is refused with HSM_TOKEN_NOT_FOUND listing the tokens present", async (t) => {
  const e = await rejectsWith(
    t,
    Pkcs11Hsm.create({ ...common(), tokenLabel: "no-such-token", pin: pinOf(token) }),
    "HSM_TOKEN_NOT_FOUND",
  );
  t.regex(e?.message ?? "", /no initialised token labelled "no-such-token"/);
  t.regex(e?.message ?? "", /"mcko-start"/);
});

test.serial("a token without the vault's master (another token) is refused with HSM_MASTER_KEY_NOT_FOUND", async (t) => {
  await rejectsWith(
    t,
    Pkcs11Hsm.create({ ...common(), tokenLabel: "mcko-other", pin: pinOf(token), expectedMasterKcv: masterKcv }),
    "HSM_MASTER_KEY_NOT_FOUND",
  );
});

test.serial("a master key whose KCV differs from the vault's is refused with HSM_MASTER_KEY_MISMATCH", async (t) => {
  const otherKcv = await Pkcs11Hsm.initMasterKey({ ...common(), tokenLabel: "mcko-other", pin: pinOf(token), adopt: false });
  t.not(otherKcv, masterKcv);
  const e = await rejectsWith(
    t,
    Pkcs11Hsm.create({ ...common(), tokenLabel: "mcko-other", pin: pinOf(token), expectedMasterKcv: masterKcv }),
    "HSM_MASTER_KEY_MISMATCH",
  );
  t.regex(e?.message ?? "", new RegExp(`has KCV ${otherKcv}.*vault was made under master KCV ${masterKcv}`));
});

test.serial("a bad module path is HSM_UNAVAILABLE", async (t) => {
  await rejectsWith(
    t,
    Pkcs11Hsm.create({ ...common(), modulePath: "/nonexistent/libpkcs11.so", pin: pinOf(token) }),
    "HSM_UNAVAILABLE",
  );
});

test.serial("the master key cannot be extracted: C_WrapKey and reading CKA_VALUE fail", async (t) => {
  const mod = acquireModule(token.modulePath);
  const slot = findSlotByTokenLabel(mod, token.tokenLabel);
  const session = openSession(mod, slot);
  const pk = mod.pkcs11;
  login(mod, slot, session, pinOf(token), token.tokenLabel);
  try {
    pk.C_FindObjectsInit(session, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_LABEL, value: MASTER },
    ]);
    const found = pk.C_FindObjects(session, 10);
    pk.C_FindObjectsFinal(session);
    t.is(found.length, 1);
    const master = found[0] as Buffer;

    const attrs = pk.C_GetAttributeValue(session, master, [
      { type: P.CKA_EXTRACTABLE },
      { type: P.CKA_SENSITIVE },
      { type: P.CKA_NEVER_EXTRACTABLE },
      { type: P.CKA_TOKEN },
    ]);
    t.deepEqual(
      attrs.map((a) => (a.value as Buffer)[0]),
      [0, 1, 1, 1],
      "EXTRACTABLE=false, SENSITIVE=true, NEVER_EXTRACTABLE=true, TOKEN=true",
    );

    const readValue = t.throws(() => pk.C_GetAttributeValue(session, master, [{ type: P.CKA_VALUE }]));
    t.is(ckrCode(readValue), P.CKR_ATTRIBUTE_SENSITIVE);

    const wrappingKey = pk.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
      { type: P.CKA_VALUE_LEN, value: 32 },
      { type: P.CKA_TOKEN, value: false },
      { type: P.CKA_WRAP, value: true },
    ]);
    for (const mechanism of [P.CKM_AES_KEY_WRAP_PAD, P.CKM_AES_KEY_WRAP]) {
      const wrap = t.throws(() => pk.C_WrapKey(session, { mechanism }, wrappingKey, master, Buffer.alloc(256)));
      t.is(ckrCode(wrap), P.CKR_KEY_UNEXTRACTABLE);
    }
    const makeExtractable = t.throws(() =>
      pk.C_SetAttributeValue(session, master, [{ type: P.CKA_EXTRACTABLE, value: true }]),
    );
    t.is(ckrCode(makeExtractable), P.CKR_ATTRIBUTE_READ_ONLY, "EXTRACTABLE can never go back to true");
    const stillLocked = pk.C_GetAttributeValue(session, master, [{ type: P.CKA_EXTRACTABLE }]);
    t.is((stillLocked[0]?.value as Buffer)[0], 0);
  } finally {
    pk.C_CloseSession(session);
    logoutUser(mod, slot);
    mod.release();
  }
});

test.serial("HsmError messages from start never carry the PIN", async (t) => {
  const pin = "s3cr3t-pin-value";
  const error = await t.throwsAsync(Pkcs11Hsm.create({ ...common(), pin: Secret.copyOf(Buffer.from(pin)) }), {
    instanceOf: HsmError,
  });
  t.false(JSON.stringify({ message: error?.message, stack: error?.stack }).includes(pin));
});
