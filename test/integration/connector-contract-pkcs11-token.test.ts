/**
 * The connector contract (test/contract/connector.ts) on the PKCS#11 token target, through the real daemon and a
 * SoftHSM2 token of its own per test. The token is read and changed out of band by the plain pkcs11js application
 * (test/support/pkcs11-app.mjs, its own process), as anyone with the token's PIN could: key objects with their
 * CKA_ID, label, usage flags and (for AES) the enc-zero KCV computed in the token, and MCKO's tag objects.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { KeystoreType, Pkcs11KeyUsage, type Keystore, type Pkcs11KeystoreConfig } from "../../protos/gen/mcko/v1/keystore.js";
import { connectorContract, type CloudKeyInfo, type ConnectorTarget, type TargetWorld } from "../contract/connector.js";
import { REPO } from "../support/daemon.js";
import { SOFTHSM_MODULE_PATH, createSoftHsmToken } from "../support/softhsm.js";

const APP = join(REPO, "test/support/pkcs11-app.mjs");
const TOKEN = "contract";
const PIN = "Canary-Token-PIN-0123456789xyz";
const WRONG_PIN = "Wrong-Token-PIN-9876543210abc";

interface AppObject {
  class: string;
  label: string;
  id?: string;
  value?: string;
  encrypt?: boolean;
  decrypt?: boolean;
  kcv?: string;
}

function pkcs11Config(c: Partial<Pkcs11KeystoreConfig>): NonNullable<Keystore["config"]> {
  return { $case: "pkcs11", value: { modulePath: SOFTHSM_MODULE_PATH, tokenLabel: TOKEN, pin: "", labelPrefix: "", keyUsage: Pkcs11KeyUsage.PKCS11_KEY_USAGE_UNSPECIFIED, transportKeyLabel: "", ...c } };
}

const pkcs11Token: ConnectorTarget = {
  id: "p11",
  title: "PKCS#11 token",
  type: KeystoreType.KEYSTORE_TYPE_PKCS11,
  configField: "pkcs11",
  async start(): Promise<TargetWorld> {
    const token = await createSoftHsmToken({ tokenLabel: TOKEN, pin: PIN });
    const app = <T>(request: Record<string, unknown>): Promise<T> =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [APP], { env: { ...process.env, SOFTHSM2_CONF: token.conf, APP_PIN: PIN }, stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (err += d.toString()));
        child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`pkcs11-app exited with ${code}: ${err}`))));
        child.stdin.end(JSON.stringify({ module: SOFTHSM_MODULE_PATH, token: TOKEN, ...request }));
      });
    return {
      // SoftHSM reads its configuration at C_Initialize: the daemon gets this token's.
      daemonEnv: { SOFTHSM2_CONF: token.conf },
      credentials: { pin: PIN },
      wrongCredentials: { pin: WRONG_PIN },
      // key_usage ENCRYPT_DECRYPT: a token takes every algorithm by default; with it, EC keys have no use to be
      // pushed for, which gives the suite its unsupported algorithm.
      config: (cr) => pkcs11Config({ pin: cr.pin ?? "", keyUsage: Pkcs11KeyUsage.PKCS11_KEY_USAGE_ENCRYPT_DECRYPT }),
      async cloudKeys(): Promise<CloudKeyInfo[]> {
        const objects = (await app<{ objects: AppObject[] }>({ op: "inspect" })).objects;
        const tags = new Map<string, Record<string, string>>();
        for (const o of objects) if (o.class === "data" && o.label.startsWith("mcko:")) tags.set(o.label.slice(5), JSON.parse(o.value ?? "{}") as Record<string, string>);
        // The transport key pair is the connector's infrastructure, not a key MCKO pushed.
        const keys = objects.filter((o) => (o.class === "secret" || o.class === "private") && o.id && o.label !== "mcko-transport");
        const out: CloudKeyInfo[] = keys.map((o) => ({
          id: o.id!,
          names: [o.label],
          tags: tags.get(o.id!) ?? {},
          state: o.encrypt || o.decrypt ? "ENABLED" : "DISABLED",
          kcv: o.kcv,
          materialCount: 1,
        }));
        // A tag object whose key object is missing: a push that stopped before its material arrived.
        for (const [id, t] of tags) if (!keys.some((o) => o.id === id)) out.push({ id, names: [], tags: t, state: "PENDING_IMPORT", kcv: undefined, materialCount: 0 });
        return out;
      },
      disableOutOfBand: async (id) => void (await app({ op: "modify", id, set: { encrypt: false, decrypt: false } })),
      // Lost: someone destroyed the key object (its tag object stays, so MCKO pushes the material again under it).
      deleteOutOfBand: async (id) => void (await app({ op: "destroy", id })),
      close: () => token.cleanup(),
    };
  },
  algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256,
  unsupported: { algorithm: KeyAlgorithm.KEY_ALGORITHM_EC_P256, message: /EC keys can only sign/ },
  // Unused with randomCrash: a token has no call log from outside.
  pushCalls: [],
  mutatingPushCalls: [],
  importCall: "C_UnwrapKey",
  deletionCall: "C_DestroyObject",
  recreatedKeyGetsNewId: false,
  deletionWindowDays: undefined,
  deletionRemoves: true,
  noFaults: "a local PKCS#11 token has no throttling, no 5xx and no network between the daemon and it",
  randomCrash: { rounds: 12, pushesPerRound: 6, maxDelayMs: 1500, seed: 11 },
  badSettings: [
    {
      title: "a module that does not exist and a label prefix with '#'",
      config: () => pkcs11Config({ pin: PIN, modulePath: "/usr/lib/no-such-pkcs11.so", labelPrefix: "a#" }),
      validateOnly: false,
      code: grpc.status.INVALID_ARGUMENT,
      fieldViolations: ["keystore.pkcs11.label_prefix", "keystore.pkcs11.module_path"],
    },
    {
      title: "a token label no slot has",
      config: () => pkcs11Config({ pin: PIN, tokenLabel: "no-such-token" }),
      validateOnly: true,
      code: grpc.status.INVALID_ARGUMENT,
      fieldViolations: ["keystore.pkcs11.token_label"],
    },
  ],
  wrongCredentialsCloudCode: "CKR_PIN_INCORRECT",
  fixCredentialField: "pin",
};

connectorContract(test, pkcs11Token);
