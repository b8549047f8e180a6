/**
 * Test support for keystores and distributions: grpc-js clients of the two services, request builders, and the
 * vault's plaintext of a key version recovered from the stopped daemon's store with the software master key file
 * (test-only knowledge, as in daemon-canary.test.ts).
 */
import * as grpc from "@grpc/grpc-js";
import { join } from "node:path";
import { DistributionServiceClient } from "../../protos/gen/mcko/v1/distribution_service.js";
import { KeystoreServiceClient } from "../../protos/gen/mcko/v1/keystore_service.js";
import { AwsWrappingAlgorithm, GcpImportMethod, GcpProtectionLevel, KeystoreType, type AwsKmsConfig, type GcpKmsConfig, type Keystore } from "../../protos/gen/mcko/v1/keystore.js";
import type { Key } from "../../protos/gen/mcko/v1/key.js";
import { kwpUnwrap } from "../../daemon/src/hsm/kcv.js";
import { readKeyring } from "../../daemon/src/hsm/software/keyring.js";
import { LowdbStore } from "../../daemon/src/store/lowdb/lowdb-store.js";
import type { KeyRecord } from "../../daemon/src/core/keys.js";
import type { Home } from "./daemon.js";

const OPTIONS = { "grpc.service_config_disable_resolution": 1 };

export interface KeystoreClients {
  readonly keystores: KeystoreServiceClient;
  readonly distributions: DistributionServiceClient;
  close(): void;
}

export function keystoreClientsFor(address: string, credentials: grpc.ChannelCredentials): KeystoreClients {
  const keystores = new KeystoreServiceClient(address, credentials, OPTIONS);
  const distributions = new DistributionServiceClient(address, credentials, OPTIONS);
  return { keystores, distributions, close: () => [keystores, distributions].forEach((c) => c.close()) };
}

export function awsConfig(c: Partial<AwsKmsConfig>): AwsKmsConfig {
  return { region: "", endpoint: "", accessKeyId: "", secretAccessKey: "", sessionToken: "", wrappingAlgorithm: AwsWrappingAlgorithm.AWS_WRAPPING_ALGORITHM_UNSPECIFIED, materialValidDays: 0, aliasPrefix: "", ...c };
}

export function awsKeystore(c: Partial<AwsKmsConfig>, extra: Partial<Keystore> = {}): Keystore {
  return {
    name: "",
    type: KeystoreType.KEYSTORE_TYPE_AWS_KMS,
    config: { $case: "awsKms", value: awsConfig(c) },
    credentialSource: 0,
    hasCredentials: false,
    allowSoftwareWrap: false,
    deletionWindowDays: 0,
    maxConcurrency: 0,
    description: "",
    lastTestResult: "",
    etag: "",
    distributionCount: 0n,
    ...extra,
  };
}

export function newKey(algorithm: number): Key {
  return { name: "", algorithm, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "" };
}

/** Plaintext of every stored version of `vault`'s keys (daemon stopped): key id → version → material. */
export async function vaultMaterials(home: Home, vault: string): Promise<Map<string, Map<number, Buffer>>> {
  const keyring = await readKeyring(join(home.dir, "master.key"));
  const store = await LowdbStore.open({ dir: join(home.dataDir, "vault") });
  const out = new Map<string, Map<number, Buffer>>();
  try {
    const page = await store.list<KeyRecord>(`key/${vault}/`, { pageSize: 1000 });
    for (const rec of page.records) {
      const versions = new Map<number, Buffer>();
      for (const v of rec.value.versions) {
        if (v.blob === null || v.masterKcv === null) continue;
        versions.set(v.number, kwpUnwrap(keyring.keys.get(v.masterKcv)!, Buffer.from(v.blob, "base64")));
      }
      out.set(rec.value.id, versions);
    }
  } finally {
    await store.close();
  }
  return out;
}

export function gcpConfig(c: Partial<GcpKmsConfig>): GcpKmsConfig {
  return { project: "", location: "", keyRing: "", endpoint: "", credentialsJson: "", importMethod: GcpImportMethod.GCP_IMPORT_METHOD_UNSPECIFIED, protectionLevel: GcpProtectionLevel.GCP_PROTECTION_LEVEL_UNSPECIFIED, ...c };
}

/** A Google Cloud KMS keystore; for the emulator pass `endpoint: \`http://${emu.endpoint}\`` (plaintext gRPC). */
export function gcpKeystore(c: Partial<GcpKmsConfig>, extra: Partial<Keystore> = {}): Keystore {
  return { ...awsKeystore({}), type: KeystoreType.KEYSTORE_TYPE_GCP_KMS, config: { $case: "gcpKms", value: gcpConfig(c) }, ...extra };
}
