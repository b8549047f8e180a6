// terraform-provider-mcko's entry point (started by provider/bin/terraform-provider-mcko, which Terraform runs).
// The cheap handshake checks run before the heavy imports, so a hand-run binary answers at once.
import { checkPluginEnv, readPluginEnv } from "./plugin/handshake.js";

const env = readPluginEnv();
const check = checkPluginEnv(env);
if (!check.ok) {
  process.stderr.write(check.message);
  process.exit(1);
}
const [{ serve }, { mckoProvider }] = await Promise.all([import("./plugin/server.js"), import("./provider.js")]);
await serve(mckoProvider(), { env });
