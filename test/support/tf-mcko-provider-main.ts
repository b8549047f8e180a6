// Serves the real MCKO provider definition plus one inert data source, `mcko_probe`, so that real-Terraform tests
// can make Terraform configure the provider before the MCKO resources exist (Terraform configures a provider only
// when something in the configuration uses it).
import { types } from "../../provider/src/plugin/cty.js";
import { defineDataSource } from "../../provider/src/plugin/resource.js";
import { readPluginEnv } from "../../provider/src/plugin/handshake.js";
import { serve } from "../../provider/src/plugin/server.js";
import { mckoProvider } from "../../provider/src/provider.js";

const probe = defineDataSource<{ address: string | null }, { address: string }>({
  typeName: "mcko_probe",
  schema: { version: 0, block: { attributes: { address: { type: types.string, computed: true, description: "The daemon address." } } } },
  read: async ({ client }) => ({ address: client.address }),
});

await serve(mckoProvider({ dataSources: [probe] }), { env: readPluginEnv(process.env) });
