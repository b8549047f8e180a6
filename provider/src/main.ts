// terraform-provider-mcko's entry point (started by provider/bin/terraform-provider-mcko, which Terraform runs).
// The cheap handshake checks run before the heavy imports, so a hand-run binary answers at once.
// `terraform-provider-mcko --debug` serves for TF_REATTACH_PROVIDERS instead (TFPLUGIN.md §1.9).
// No top-level await: provider/bin/build-provider.mjs bundles this file as CommonJS, which the wrapper runs.
import { pluginEnvFromProcess } from "./config.js";
import { checkPluginEnv } from "./plugin/handshake.js";

export const PROVIDER_SOURCE = "registry.terraform.io/mcko/mcko";

async function main(): Promise<void> {
  const debug = process.argv.includes("--debug");
  const env = pluginEnvFromProcess();
  const check = checkPluginEnv(env);
  if (!debug && !check.ok) {
    process.stderr.write(check.message);
    process.exit(1);
  }
  const [{ serve }, { mckoProvider }] = await Promise.all([import("./plugin/server.js"), import("./provider.js")]);
  await serve(mckoProvider(), { env, ...(debug ? { debug: { source: PROVIDER_SOURCE } } : {}) });
}

main().catch((err: unknown) => {
  process.stderr.write(`terraform-provider-mcko: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
