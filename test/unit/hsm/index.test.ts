import test from "ava";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isMasterRotatable } from "../../../daemon/src/hsm/hsm.js";
import { createHsm, initMasterKey, readPinFile } from "../../../daemon/src/hsm/index.js";
import { rejectsWith } from "../../contract/hsm.js";

let dir = "";
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mcko-hsm-index-"));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("initMasterKey + createHsm start the software backend with the recorded KCV", async (t) => {
  const masterKeyFile = join(dir, "master.keyring");
  const kcv = await initMasterKey({ kind: "software", masterKeyFile });
  const hsm = await createHsm({ kind: "software", masterKeyFile, expectedMasterKcv: kcv });
  t.is(hsm.kind, "software");
  t.true(isMasterRotatable(hsm));
  t.is(await hsm.masterKeyCheckValue(), kcv);
  await hsm.close();
});

test("readPinFile strips the trailing newline and refuses loose, empty or missing files", async (t) => {
  const file = join(dir, "pin");
  await writeFile(file, "5678\n", { mode: 0o600 });
  const pin = await readPinFile(file);
  t.is(pin.expose().toString(), "5678");
  pin.dispose();
  await chmod(file, 0o644);
  const loose = await rejectsWith(t, readPinFile(file), "HSM_LOGIN_FAILED");
  t.regex(loose?.message ?? "", /chmod 600/);
  t.false((loose?.message ?? "").includes("5678"));
  await writeFile(join(dir, "empty"), "\n", { mode: 0o600 });
  await rejectsWith(t, readPinFile(join(dir, "empty")), "HSM_LOGIN_FAILED");
  await rejectsWith(t, readPinFile(join(dir, "missing")), "HSM_LOGIN_FAILED");
});
