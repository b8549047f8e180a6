// mcko_keystore validation (exactly one connection block; malformed settings reported at their attribute path) and
// mcko_key_distribution planning (a refreshed state that differs from the vault's wishes plans a repair; a clean one
// plans nothing). The acceptance test test/provider/keystore_distribution.test.ts runs the same paths for real.
import test from "ava";
import { isUnknown, type ObjectValue } from "../../../provider/src/plugin/cty.js";
import { Diagnostics } from "../../../provider/src/plugin/diagnostics.js";
import { keyDistributionResource, parseDistributionName, shortenDigests } from "../../../provider/src/resources/key-distribution.js";
import { keystoreResource, parseKeystoreName } from "../../../provider/src/resources/keystore.js";

const base = (blocks: Partial<Record<string, ObjectValue[]>>): ObjectValue => ({
  id: null,
  vault: "vaults/v",
  name: "ks",
  description: null,
  allow_software_wrap: null,
  deletion_window_days: null,
  max_concurrency: null,
  credentials_wo_version: null,
  status: null,
  has_credentials: null,
  aws_kms: [],
  azure_key_vault: [],
  gcp_kms: [],
  ibm_key_protect: [],
  pkcs11: [],
  ...blocks,
});

async function validate(config: ObjectValue): Promise<Diagnostics> {
  const diags = new Diagnostics();
  await keystoreResource.validate!({ config: config as never, diags });
  return diags;
}

test("keystore: one block is fine; none or two is an error on the block path", async (t) => {
  t.deepEqual((await validate(base({ aws_kms: [{ region: "us-east-1", endpoint: "http://127.0.0.1:4566" }] }))).items, []);
  const none = await validate(base({}));
  t.is(none.items.length, 1);
  t.deepEqual(none.items[0]!.path, [{ attribute: "aws_kms" }]);
  const two = await validate(base({ aws_kms: [{ region: "us-east-1" }], pkcs11: [{ module_path: "/x.so", token_label: "t" }] }));
  t.is(two.items.length, 1);
  t.regex(two.items[0]!.summary, /Conflicting/);
  t.deepEqual(two.items[0]!.path, [{ attribute: "pkcs11" }, { index: 0 }]);
});

test("keystore: a malformed endpoint is reported at aws_kms[0].endpoint; unknown blocks are not judged", async (t) => {
  const bad = await validate(base({ aws_kms: [{ region: "us-east-1", endpoint: "not a url" }] }));
  t.deepEqual(bad.items.map((d) => d.path), [[{ attribute: "aws_kms" }, { index: 0 }, { attribute: "endpoint" }]]);
  const gcp = await validate(base({ gcp_kms: [{ project: "p", location: "l", key_ring: "r", endpoint: "grpc://x:1/path", import_method: "RSA_OAEP_2048" }] }));
  t.deepEqual(gcp.items.map((d) => d.path), [[{ attribute: "gcp_kms" }, { index: 0 }, { attribute: "endpoint" }], [{ attribute: "gcp_kms" }, { index: 0 }, { attribute: "import_method" }]], "gcp endpoint is https://host[:port], host[:port] or http://host:port; import_method is an ImportMethod");
  for (const endpoint of ["https://cloudkms.googleapis.com", "cloudkms.googleapis.com:443", "http://127.0.0.1:9090"]) {
    t.deepEqual((await validate(base({ gcp_kms: [{ project: "p", location: "l", key_ring: "r", endpoint, import_method: "RSA_OAEP_4096_SHA1_AES_256", protection_level: "SOFTWARE" }] }))).items, [], endpoint);
  }
  const { UNKNOWN } = await import("../../../provider/src/plugin/cty.js");
  t.deepEqual((await validate(base({ aws_kms: UNKNOWN as never }))).items, []);
});

test("names parse", (t) => {
  t.deepEqual(parseKeystoreName("vaults/v/keystores/aws"), { vaultName: "vaults/v", keystore: "aws" });
  t.is(parseKeystoreName("vaults/v/keys/aws"), undefined);
  t.deepEqual(parseDistributionName("vaults/v/keys/k/distributions/aws"), { key: "vaults/v/keys/k", keystore: "vaults/v/keystores/aws" });
  t.is(parseDistributionName("vaults/v/keys/k"), undefined);
});

const dist = (over: Partial<Record<string, unknown>>): ObjectValue =>
  ({
    id: "vaults/v/keys/k/distributions/aws",
    key: "vaults/v/keys/k",
    keystore: "vaults/v/keystores/aws",
    cloud_name: "k",
    cloud_key_id: "abc-1",
    cloud_key_uri: "arn:aws:kms:us-east-1:1:key/abc-1",
    cloud_state: "ENABLED",
    desired_state: "ENABLED",
    sync_state: "IN_SYNC",
    drift: [],
    ...over,
  }) as ObjectValue;

async function plan(prior: ObjectValue) {
  const r = await keyDistributionResource.plan!({ prior, proposed: prior, config: prior, planned: prior, private: new Uint8Array(), client: undefined as never, signal: new AbortController().signal, diags: new Diagnostics() } as never);
  return r.planned as Record<string, unknown>;
}

test("distribution: in sync plans nothing; disabled out of band plans ENABLED; missing plans a new cloud key", async (t) => {
  t.deepEqual(await plan(dist({})), dist({}));
  const disabled = await plan(dist({ cloud_state: "DISABLED", sync_state: "DRIFTED", drift: ["cloud key disabled out of band"] }));
  t.is(disabled["cloud_state"], "ENABLED");
  t.true(isUnknown(disabled["sync_state"] as never));
  t.is(disabled["cloud_key_id"], "abc-1", "a disabled key is enabled, not re-created");
  const missing = await plan(dist({ cloud_state: "ABSENT", sync_state: "DRIFTED", drift: ["cloud key missing"] }));
  t.is(missing["cloud_state"], "ENABLED");
  t.true(isUnknown(missing["cloud_key_id"] as never));
  const foreign = await plan(dist({ sync_state: "DRIFTED", drift: ["foreign material"] }));
  t.is(foreign["cloud_state"], "ENABLED");
  t.true(isUnknown(foreign["cloud_key_id"] as never), "foreign material: the vault's key goes back, maybe as a new cloud key");
  // A key waiting for activation is not drift.
  const waiting = dist({ cloud_state: "ABSENT", desired_state: "ABSENT", sync_state: "PENDING" });
  t.deepEqual(await plan(waiting), waiting);
});

test("distribution: drift messages keep only a prefix of material digests", (t) => {
  t.is(shortenDigests(`material ${"ab".repeat(32)} is not the vault's (${"0f".repeat(32)})`), "material abababababab… is not the vault's (0f0f0f0f0f0f…)");
  t.is(shortenDigests("cloud key disabled out of band"), "cloud key disabled out of band");
});
