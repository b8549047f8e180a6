// The app of examples/cdktf/main.ts on CDK Terrain (cdktn 0.24, the maintained fork of cdktf), through the bindings
// generated for it (provider/cdktf/cdktn, `npm run gen:cdktf`), imported here through their index. It synthesizes
// the same <outdir>/stacks/keys/cdk.tf.json:
//
//   node --import tsx examples/cdktf/main-cdktn.ts
//   cd cdktf.out/stacks/keys && terraform init && terraform apply
import { App, LocalBackend, TerraformOutput, TerraformStack } from "cdktn";
import type { Construct } from "constructs";
import { dataMckoKeys, key, provider, vault } from "../../provider/cdktf/cdktn/index.js";

class KeysStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    // State next to cdk.tf.json, where terraform runs.
    new LocalBackend(this, { path: "terraform.tfstate" });
    new provider.MckoProvider(this, "mcko", {});

    const payments = new vault.Vault(this, "payments", {
      name: "payments",
      displayName: "Payments",
      description: "Keys of the payments platform",
    });
    // An AES key for envelope encryption, rotated every 30 days.
    const data = new key.Key(this, "data", {
      vault: payments.id,
      name: "data-key",
      algorithm: "AES_256",
      rotationPeriod: "720h",
      labels: { env: "prod", team: "payments" },
    });
    // A signing key kept for verification only.
    const signing = new key.Key(this, "legacy_signing", {
      vault: payments.id,
      name: "legacy-signing",
      algorithm: "EC_P256",
      state: "DEACTIVATED",
      labels: { env: "prod" },
    });
    const active = new dataMckoKeys.DataMckoKeys(this, "prod_active", {
      vault: payments.id,
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
