// A CDKTF app (cdktf 0.21) managing a vault and its keys with the MCKO provider, through the bindings generated from
// the provider's schema (provider/cdktf/cdktf, `npm run gen:cdktf`). Running it synthesizes
// <outdir>/stacks/keys/cdk.tf.json (outdir: CDKTF_OUTDIR, default ./cdktf.out), which Terraform then plans and applies:
//
//   node --import tsx examples/cdktf/main.ts
//   cd cdktf.out/stacks/keys && terraform init && terraform apply
//
// The provider block is left empty: the daemon's address and the mTLS files come from MCKO_ADDR, MCKO_CA_CERT,
// MCKO_CLIENT_CERT and MCKO_CLIENT_KEY in Terraform's environment, so no credential is written into cdk.tf.json.
// examples/cdktf/main-cdktn.ts is the same app on CDK Terrain (cdktn).
import { App, LocalBackend, TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";
import { DataMckoKeys } from "../../provider/cdktf/cdktf/data-mcko-keys/index.js";
import { Key } from "../../provider/cdktf/cdktf/key/index.js";
import { MckoProvider } from "../../provider/cdktf/cdktf/provider/index.js";
import { Vault } from "../../provider/cdktf/cdktf/vault/index.js";

class KeysStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    // State next to cdk.tf.json, where terraform runs (cdktf's default is an absolute path into the synth directory).
    new LocalBackend(this, { path: "terraform.tfstate" });
    new MckoProvider(this, "mcko", {});

    const vault = new Vault(this, "payments", {
      name: "payments",
      displayName: "Payments",
      description: "Keys of the payments platform",
    });
    // An AES key for envelope encryption, rotated every 30 days.
    const data = new Key(this, "data", {
      vault: vault.id,
      name: "data-key",
      algorithm: "AES_256",
      rotationPeriod: "720h",
      labels: { env: "prod", team: "payments" },
    });
    // A signing key kept for verification only.
    const signing = new Key(this, "legacy_signing", {
      vault: vault.id,
      name: "legacy-signing",
      algorithm: "EC_P256",
      state: "DEACTIVATED",
      labels: { env: "prod" },
    });
    const active = new DataMckoKeys(this, "prod_active", {
      vault: vault.id,
      state: "ACTIVE",
      labels: { env: "prod" },
      dependsOn: [data, signing],
    });

    new TerraformOutput(this, "data_key_id", { value: data.id });
    new TerraformOutput(this, "data_key_kcv", { value: data.kcv });
    new TerraformOutput(this, "active_prod_keys", { value: active.ids });
  }
}

const app = new App();
new KeysStack(app, "keys");
app.synth();
