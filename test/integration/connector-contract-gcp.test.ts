/**
 * The connector contract (test/contract/connector.ts) on Google Cloud KMS, through the real daemon and the Cloud KMS
 * emulator over plaintext gRPC. A Google CryptoKey is named by its id and never deleted: deletion destroys its
 * versions (DESTROY_SCHEDULED for the key's destroy_scheduled_duration), and a key pushed again after being lost
 * keeps its id. MCKO's tags are labels (`mcko-request-id`, `mcko-vault` + `mcko-key`); this descriptor reads them
 * back into the suite's tag names. The emulator authenticates nobody (plaintext gRPC, and MCKO sends no credentials
 * over plaintext): the refusal the suite needs is Google's PERMISSION_DENIED for a project the caller may not use.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { KeystoreType, type GcpKmsConfig, type Keystore } from "../../protos/gen/mcko/v1/keystore.js";
import { startGcpKmsEmulator, type GcpCryptoKeyState } from "../emulators/gcp-kms/index.js";
import { gcpConfig } from "../support/keystores.js";
import { connectorContract, type CloudKeyInfo, type ConnectorTarget, type TargetWorld } from "../contract/connector.js";

const PROJECT = "mcko-test";
const LOCATION = "europe-west1";
const RING_ID = "contract";
const RING = `projects/${PROJECT}/locations/${LOCATION}/keyRings/${RING_ID}`;
/** A project the emulator refuses (Google answers PERMISSION_DENIED alike for one that does not exist). */
const ELSEWHERE = "someone-else";

const LIVE = new Set(["ENABLED", "DISABLED", "PENDING_IMPORT"]);

function info(k: GcpCryptoKeyState): CloudKeyInfo {
  const id = k.name.slice(k.name.lastIndexOf("/") + 1);
  const live = k.versions.filter((v) => LIVE.has(v.state));
  const current = live.find((v) => v.name === k.primary) ?? live.at(-1);
  const scheduled = k.versions.some((v) => v.state === "DESTROY_SCHEDULED" || v.state === "DESTROYED");
  const tags: Record<string, string> = {};
  if (k.labels["mcko-request-id"]) tags["mcko:request-id"] = k.labels["mcko-request-id"];
  if (k.labels["mcko-vault"] && k.labels["mcko-key"]) tags["mcko:key"] = `vaults/${k.labels["mcko-vault"]}/keys/${k.labels["mcko-key"]}`;
  return {
    id,
    names: [id],
    tags,
    state: current ? (current.state === "ENABLED" ? "ENABLED" : current.state === "DISABLED" ? "DISABLED" : "PENDING_IMPORT") : scheduled ? "DELETION_SCHEDULED" : k.versions.length === 0 ? "PENDING_IMPORT" : "OTHER",
    kcv: current?.kcv,
    materialCount: live.length,
    ...(!current && scheduled ? { deletionWindowDays: k.destroyScheduledDurationSeconds / 86_400 } : {}),
  };
}

const config = (c: Partial<GcpKmsConfig>): NonNullable<Keystore["config"]> => ({ $case: "gcpKms", value: gcpConfig(c) });

const gcp: ConnectorTarget = {
  id: "gcp",
  title: "Google Cloud KMS",
  type: KeystoreType.KEYSTORE_TYPE_GCP_KMS,
  configField: "gcp_kms",
  async start(): Promise<TargetWorld> {
    const emu = await startGcpKmsEmulator({ projects: [PROJECT], reuseWrappingKeys: true });
    const keys = () => emu.admin.state().cryptoKeys.filter((k) => k.name.startsWith(`${RING}/`));
    const key = (id: string) => keys().find((k) => k.name === `${RING}/cryptoKeys/${id}`);
    return {
      credentials: {},
      wrongCredentials: {},
      config: () => config({ project: PROJECT, location: LOCATION, keyRing: RING_ID, endpoint: `http://${emu.endpoint}` }),
      faults: emu.admin,
      cloudKeys: () => keys().map(info),
      disableOutOfBand: (id) => {
        for (const v of key(id)?.versions ?? []) if (v.state === "ENABLED") emu.admin.disableVersion(v.name);
      },
      deleteOutOfBand: (id) => emu.admin.deleteCryptoKey(`${RING}/cryptoKeys/${id}`),
      close: () => emu.close(),
    };
  },
  noCredentialCheck: "the Cloud KMS emulator serves plaintext gRPC and authenticates nobody, and MCKO sends no credentials over plaintext (keystore-gcp.test.ts shows credentials_json refused for an http:// endpoint)",
  refusedAccess: {
    config: (w) => config({ ...(w.config(w.credentials).value as GcpKmsConfig), project: ELSEWHERE }),
    fixMask: "gcp_kms.project",
    fix: (w) => w.config(w.credentials),
  },
  algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256,
  unsupported: { algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_192, message: /no 192-bit AES keys/ },
  pushCalls: ["GetKeyRing", "CreateCryptoKey", "ListCryptoKeyVersions", "ListImportJobs", "ImportCryptoKeyVersion", "UpdateCryptoKeyPrimaryVersion", "GetCryptoKey", "ListCryptoKeyVersions"],
  mutatingPushCalls: ["CreateCryptoKey", "ImportCryptoKeyVersion", "UpdateCryptoKeyPrimaryVersion"],
  importCall: "ImportCryptoKeyVersion",
  deletionCall: "DestroyCryptoKeyVersion",
  recreatedKeyGetsNewId: false,
  deletionWindowDays: 10,
  badSettings: [
    {
      title: "a malformed endpoint and a project that is not a project id",
      config: (w) => config({ ...(w.config(w.credentials).value as GcpKmsConfig), endpoint: "grpc://127.0.0.1::1/x?y", project: "Not A Project" }),
      validateOnly: false,
      code: grpc.status.INVALID_ARGUMENT,
      fieldViolations: ["keystore.gcp_kms.endpoint", "keystore.gcp_kms.project"],
    },
    {
      title: "a project that does not exist or is not ours (Google refuses it: PERMISSION_DENIED)",
      config: (w) => config({ ...(w.config(w.credentials).value as GcpKmsConfig), project: ELSEWHERE }),
      validateOnly: true,
      code: grpc.status.FAILED_PRECONDITION,
      fieldViolations: [],
      reason: "CLOUD_CREDENTIALS_REJECTED",
      message: new RegExp(`PERMISSION_DENIED.*projects/${ELSEWHERE}`),
    },
  ],
  wrongCredentialsCloudCode: "PERMISSION_DENIED",
};

connectorContract(test, gcp);
