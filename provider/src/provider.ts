// The MCKO provider definition: the provider block's schema, how ConfigureProvider builds the daemon client, and the
// registry of resources and data sources (filled in by provider/src/resources and provider/src/datasources).
import { type DaemonClient, createDaemonClient } from "./client/daemon-client.js";
import { describeDaemonError, isServiceError } from "./client/errors.js";
import { DEFAULT_REQUEST_TIMEOUT, type EnvDefaults, readEnvDefaults, resolveProviderConfig, validateProviderConfig } from "./config.js";
import { keyDataSource } from "./datasources/key.js";
import { keysDataSource } from "./datasources/keys.js";
import { keystoreDataSource } from "./datasources/keystore.js";
import { types } from "./plugin/cty.js";
import type { DataSourceType, ProviderDefinition, ResourceType } from "./plugin/resource.js";
import type { ObjectValue } from "./plugin/cty.js";
import type { Schema } from "./plugin/schema.js";
import { keyResource } from "./resources/key.js";
import { keyDistributionResource } from "./resources/key-distribution.js";
import { keystoreResource } from "./resources/keystore.js";
import { vaultResource } from "./resources/vault.js";

export const PROVIDER_TYPE_NAME = "mcko";
export const PROVIDER_VERSION = "0.1.0";

const pemDoc = (what: string, env: string): string =>
  `${what}: inline PEM, or the path of a PEM file. Defaults to the ${env} environment variable.`;

export const providerSchema: Schema = {
  version: 0,
  block: {
    description: "MCKO, a multicloud key orchestrator: keys born in an HSM, distributed to cloud keystores.",
    attributes: {
      address: {
        type: types.string,
        optional: true,
        description: "The MCKO daemon's gRPC address, host:port (e.g. 127.0.0.1:7443). Defaults to the MCKO_ADDR environment variable.",
      },
      ca_cert: { type: types.string, optional: true, description: pemDoc("CA certificate that signed the daemon's server certificate", "MCKO_CA_CERT") },
      client_cert: { type: types.string, optional: true, description: pemDoc("Client certificate for mutual TLS", "MCKO_CLIENT_CERT") },
      client_key: {
        type: types.string,
        optional: true,
        sensitive: true,
        description: pemDoc("Private key of the client certificate", "MCKO_CLIENT_KEY"),
      },
      request_timeout: {
        type: types.string,
        optional: true,
        description: `Deadline of each daemon request, as a duration such as "30s" or "2m". Defaults to "${DEFAULT_REQUEST_TIMEOUT}".`,
      },
    },
  },
};

/** Resources of the provider. Each lives in provider/src/resources/<noun>.ts and is registered here. */
export const resources: ResourceType<ObjectValue, DaemonClient>[] = [vaultResource, keyResource, keystoreResource, keyDistributionResource];
/** Data sources of the provider (provider/src/datasources/<noun>.ts). */
export const dataSources: DataSourceType<ObjectValue, DaemonClient>[] = [keyDataSource, keysDataSource, keystoreDataSource];

export interface ProviderDeps {
  /** Environment defaults (default: read from the process environment). */
  readonly env?: EnvDefaults;
  readonly readFile?: (path: string) => Buffer;
  readonly resources?: readonly ResourceType<ObjectValue, DaemonClient>[];
  readonly dataSources?: readonly DataSourceType<ObjectValue, DaemonClient>[];
}

export function mckoProvider(deps: ProviderDeps = {}): ProviderDefinition<DaemonClient> {
  let address = "(not configured)";
  return {
    typeName: PROVIDER_TYPE_NAME,
    version: PROVIDER_VERSION,
    schema: providerSchema,
    resources: deps.resources ?? resources,
    dataSources: deps.dataSources ?? dataSources,
    validate: ({ config, diags }) => validateProviderConfig(config as ObjectValue, diags),
    configure: async ({ config, diags, signal }) => {
      const conn = resolveProviderConfig(config as ObjectValue, { env: deps.env ?? readEnvDefaults(), ...(deps.readFile ? { readFile: deps.readFile } : {}) }, diags);
      if (!conn) return undefined;
      address = conn.address;
      const client = createDaemonClient(conn);
      try {
        await client.ping(signal);
      } catch (err) {
        client.close();
        diags.add(...describeDaemonError(err, conn.address));
        return undefined;
      }
      return client;
    },
    // Only daemon (gRPC) errors are translated; anything else is a provider bug and keeps its own message.
    describeError: (err) => (isServiceError(err) ? describeDaemonError(err, address) : undefined),
  };
}
