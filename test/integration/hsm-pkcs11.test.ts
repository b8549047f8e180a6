import test from "ava";
import { Pkcs11Hsm } from "../../daemon/src/hsm/pkcs11/pkcs11-hsm.js";
import { Secret } from "../../daemon/src/util/secret.js";
import { hsmContract } from "../contract/hsm.js";
import { createSoftHsmToken, type SoftHsmToken } from "../support/softhsm.js";

// One token for the file; each backend gets a master key of its own (its own label) on it.
let token: SoftHsmToken | undefined;
let tokenReady: Promise<SoftHsmToken> | undefined;
let masters = 0;

function theToken(): Promise<SoftHsmToken> {
  tokenReady ??= createSoftHsmToken().then((t) => {
    token = t;
    process.env.SOFTHSM2_CONF = t.conf;
    return t;
  });
  return tokenReady;
}

test.after.always(async () => {
  await token?.cleanup();
});

hsmContract(
  test,
  async () => {
    const t = await theToken();
    const masterKeyLabel = `mcko-master-${++masters}`;
    const common = { modulePath: t.modulePath, tokenLabel: t.tokenLabel, masterKeyLabel };
    const pin = Secret.copyOf(Buffer.from(t.pin));
    try {
      const kcv = await Pkcs11Hsm.initMasterKey({ ...common, pin, adopt: false });
      return await Pkcs11Hsm.create({ ...common, pin, expectedMasterKcv: kcv });
    } finally {
      pin.dispose();
    }
  },
  { oaepHashesInHsm: ["sha1"] },
);
