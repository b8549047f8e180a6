// The `terraform providers schema -json` document for a provider definition, built without Terraform: the input of
// the CDKTF binding generator (@cdktf/provider-generator) and of the docs test.
import type { ProviderDefinition } from "./resource.js";
import { type JsonSchema, schemaToJson } from "./schema.js";

export interface ProviderSchemasDocument {
  format_version: "1.0";
  provider_schemas: Record<
    string,
    {
      provider: JsonSchema;
      resource_schemas: Record<string, JsonSchema>;
      data_source_schemas: Record<string, JsonSchema>;
    }
  >;
  provider_versions?: Record<string, string>;
}

/** `source` is the full provider address, e.g. registry.terraform.io/mcko/mcko (the generator takes the last part). */
export function providerSchemasDocument(source: string, provider: ProviderDefinition<unknown>): ProviderSchemasDocument {
  return {
    format_version: "1.0",
    provider_schemas: {
      [source]: {
        provider: schemaToJson(provider.schema),
        resource_schemas: Object.fromEntries(provider.resources.map((r) => [r.typeName, schemaToJson(r.schema)])),
        data_source_schemas: Object.fromEntries(provider.dataSources.map((d) => [d.typeName, schemaToJson(d.schema)])),
      },
    },
    provider_versions: { [source]: provider.version },
  };
}
