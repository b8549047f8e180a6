/** The software backend's master keyring file: creation, permissions, corruption, KCV check, rotation on disk. */
import test from "ava";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aesKcv } from "../../../daemon/src/hsm/kcv.js";
import { SoftwareHsm } from "../../../daemon/src/hsm/software/software-hsm.js";
import { rejectsWith } from "../../contract/hsm.js";

let dir = "";
let n = 0;
const fresh = (): string => join(dir, `keyring-${++n}`);

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mcko-keyring-"));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("initMasterKeyFile writes a 0600 keyring whose current master has the returned KCV", async (t) => {
  const file = fresh();
  const kcv = await SoftwareHsm.initMasterKeyFile(file);
  t.regex(kcv, /^[0-9a-f]{6}$/);
  t.is((await stat(file)).mode & 0o777, 0o600);
  const text = (await readFile(file)).toString("latin1");
  t.regex(text, new RegExp(`^mcko-master-keyring v1\ncurrent ${kcv}\nkey ${kcv} [0-9a-f]{64}\n$`));
  const hex = /key [0-9a-f]{6} ([0-9a-f]{64})/.exec(text)?.[1] ?? "";
  t.is(aesKcv(Buffer.from(hex, "hex")), kcv, "the KCV is enc-zero of the stored key");
  const hsm = await SoftwareHsm.create({ masterKeyFile: file, expectedMasterKcv: kcv });
  t.is(await hsm.masterKeyCheckValue(), kcv);
  await hsm.close();
});

test("initMasterKeyFile never overwrites an existing file", async (t) => {
  const file = fresh();
  const kcv = await SoftwareHsm.initMasterKeyFile(file);
  const before = await readFile(file);
  const e = await rejectsWith(t, SoftwareHsm.initMasterKeyFile(file), "HSM_INVALID_INPUT");
  t.regex(e?.message ?? "", /already exists/);
  t.deepEqual(await readFile(file), before);
  const hsm = await SoftwareHsm.create({ masterKeyFile: file });
  t.is(await hsm.masterKeyCheckValue(), kcv);
  await hsm.close();
});

test("a keyring readable by group or others is refused with a message that says what to do", async (t) => {
  const file = fresh();
  await SoftwareHsm.initMasterKeyFile(file);
  for (const mode of [0o644, 0o640, 0o604, 0o620]) {
    await chmod(file, mode);
    const e = await rejectsWith(t, SoftwareHsm.create({ masterKeyFile: file }), "HSM_UNAVAILABLE");
    t.regex(e?.message ?? "", /accessible by group or others/);
    t.regex(e?.message ?? "", /chmod 600/);
  }
  await chmod(file, 0o400);
  const hsm = await SoftwareHsm.create({ masterKeyFile: file });
  await hsm.close();
  t.pass();
});

test("a missing keyring is HSM_MASTER_KEY_NOT_FOUND and says how to create it", async (t) => {
  const e = await rejectsWith(t, SoftwareHsm.create({ masterKeyFile: join(dir, "nope") }), "HSM_MASTER_KEY_NOT_FOUND");
  t.regex(e?.message ?? "", /mcko init --hsm software/);
});

test("a keyring whose current master differs from the vault's is HSM_MASTER_KEY_MISMATCH", async (t) => {
  const file = fresh();
  const kcv = await SoftwareHsm.initMasterKeyFile(file);
  const e = await rejectsWith(
    t,
    SoftwareHsm.create({ masterKeyFile: file, expectedMasterKcv: "000000" }),
    "HSM_MASTER_KEY_MISMATCH",
  );
  t.regex(e?.message ?? "", new RegExp(`KCV ${kcv}.*master KCV 000000`));
});

test("corrupted keyrings are refused with HSM_INVALID_INPUT", async (t) => {
  const good = fresh();
  const kcv = await SoftwareHsm.initMasterKeyFile(good);
  const text = (await readFile(good)).toString("latin1");
  const flipped = text.replace(/(key [0-9a-f]{6} )([0-9a-f])/, (_, p: string, c: string) => p + (c === "0" ? "1" : "0"));
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["something else\n", /first line/],
    [text.replace(`current ${kcv}`, "current 123456"), /current master 123456 is not in the file/],
    [text.replace(/current [0-9a-f]{6}\n/, ""), /no "current" line/],
    [flipped, /does not match its KCV/],
    [text.replace(/ [0-9a-f]{64}/, " abcd"), /64 hex digits/],
    [text + "bogus record\n", /unknown record/],
  ];
  for (const [content, message] of cases) {
    const file = fresh();
    await writeFile(file, content, { mode: 0o600 });
    const e = await rejectsWith(t, SoftwareHsm.create({ masterKeyFile: file }), "HSM_INVALID_INPUT");
    t.regex(e?.message ?? "", message);
  }
});

test("rotation is persisted: a restart sees the new current master and still reads old blobs", async (t) => {
  const file = fresh();
  const m1 = await SoftwareHsm.initMasterKeyFile(file);
  const first = await SoftwareHsm.create({ masterKeyFile: file, expectedMasterKcv: m1 });
  const k1 = await first.generateKey("HMAC_SHA256");
  const m2 = await first.createMasterKey();
  await first.close();
  t.is((await stat(file)).mode & 0o777, 0o600, "the rewritten file keeps mode 0600");

  await rejectsWith(t, SoftwareHsm.create({ masterKeyFile: file, expectedMasterKcv: m1 }), "HSM_MASTER_KEY_MISMATCH");
  const second = await SoftwareHsm.create({ masterKeyFile: file, expectedMasterKcv: m2 });
  t.is(await second.checkValue(k1), k1.kcv);
  const r1 = await second.rewrapToCurrentMaster(k1);
  await second.destroyMasterKey(m1);
  await second.close();

  const third = await SoftwareHsm.create({ masterKeyFile: file, expectedMasterKcv: m2 });
  t.false((await readFile(file)).toString("latin1").includes(`key ${m1}`), "the destroyed master is gone from disk");
  await rejectsWith(t, third.checkValue(k1), "HSM_MASTER_KEY_NOT_FOUND");
  t.is(await third.checkValue(r1), k1.kcv);
  await third.close();
});

test("concurrent master creations are serialised and all land in the file", async (t) => {
  const file = fresh();
  await SoftwareHsm.initMasterKeyFile(file);
  const hsm = await SoftwareHsm.create({ masterKeyFile: file });
  const created = await Promise.all([hsm.createMasterKey(), hsm.createMasterKey(), hsm.createMasterKey()]);
  const current = await hsm.masterKeyCheckValue();
  await hsm.close();
  const text = (await readFile(file)).toString("latin1");
  for (const kcv of created) t.true(text.includes(`key ${kcv} `));
  t.is(current, created[2], "creations run in call order; the last is current");
  t.true(text.includes(`current ${current}\n`));
});
