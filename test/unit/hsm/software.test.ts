import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SoftwareHsm } from "../../../daemon/src/hsm/software/software-hsm.js";
import { hsmContract } from "../../contract/hsm.js";

const dirs: string[] = [];
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

hsmContract(test, async () => {
  const dir = await mkdtemp(join(tmpdir(), "mcko-softhsm-sw-"));
  dirs.push(dir);
  const masterKeyFile = join(dir, "master.keyring");
  const kcv = await SoftwareHsm.initMasterKeyFile(masterKeyFile);
  return SoftwareHsm.create({ masterKeyFile, expectedMasterKcv: kcv });
});
