/**
 * The daemon's own keys, kept in the internal store (a separate file no API reaches), wrapped under the master
 * key: the Ed25519 audit signing key and the AES-256 credential-encryption key. Also the master key's KCV as the
 * vault recorded it, checked on every start.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import type { Hsm } from "../hsm/hsm.js";
import type { JsonValue, Store } from "../store/store.js";
import { Secret } from "../util/secret.js";

const MASTER = "internal/master";
const AUDIT_KEY = "internal/audit-signing-key";
const CREDENTIAL_KEY = "internal/credential-key";

interface MasterRecord {
  kcv: string;
  backend: string;
  recordedAt: string;
}
interface WrappedInternalKey {
  blob: string;
  masterKcv: string;
  publicKeyPem?: string;
  createdAt: string;
}

export class StartupError extends Error {
  override name = "StartupError";
}

/** The master KCV the vault recorded, if any (passed to the HSM backend so it can refuse a wrong master early). */
export async function recordedMasterKcv(internal: Store): Promise<string | undefined> {
  return (await internal.get<MasterRecord>(MASTER))?.value.kcv;
}

export interface InternalKeys {
  readonly masterKcv: string;
  readonly auditSigningKey: KeyObject;
  readonly auditPublicKey: KeyObject;
  /** AES-256 key encrypting keystore credentials; the caller disposes it on shutdown. */
  readonly credentialKey: Secret;
}

/** Checks the master KCV against the record (recording it on first start) and loads or creates the internal keys. */
export async function loadInternalKeys(internal: Store, hsm: Hsm, now: () => Date): Promise<InternalKeys> {
  const masterKcv = await hsm.masterKeyCheckValue();
  const recorded = await internal.get<MasterRecord>(MASTER);
  if (recorded && recorded.value.kcv !== masterKcv) {
    throw new StartupError(
      `master key mismatch: this vault was created under master key KCV ${recorded.value.kcv}, but the ${hsm.kind} HSM's master key has KCV ${masterKcv}. ` +
        "Point the configuration at the right key file / token, or restore the right master key; the vault files were not touched.",
    );
  }
  if (!recorded) {
    const value: MasterRecord = { kcv: masterKcv, backend: hsm.kind, recordedAt: now().toISOString() };
    await internal.commit({ mutations: [{ op: "put", key: MASTER, value: value as unknown as JsonValue, expectVersion: 0 }] });
  }

  let audit = await internal.get<WrappedInternalKey>(AUDIT_KEY);
  if (!audit) {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const der = Secret.adopt(privateKey.export({ format: "der", type: "pkcs8" }));
    try {
      const value: WrappedInternalKey = {
        blob: (await hsm.wrapSecret(der)).toString("base64"),
        masterKcv,
        publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
        createdAt: now().toISOString(),
      };
      await internal.commit({ mutations: [{ op: "put", key: AUDIT_KEY, value: value as unknown as JsonValue, expectVersion: 0 }] });
    } finally {
      der.dispose();
    }
    audit = await internal.get<WrappedInternalKey>(AUDIT_KEY);
  }
  const auditDer = await hsm.unwrapSecret(Buffer.from(audit!.value.blob, "base64"));
  let auditSigningKey: KeyObject;
  try {
    auditSigningKey = createPrivateKey({ key: auditDer.expose(), format: "der", type: "pkcs8" });
  } finally {
    auditDer.dispose();
  }
  const auditPublicKey = createPublicKey(audit!.value.publicKeyPem!);

  let cred = await internal.get<WrappedInternalKey>(CREDENTIAL_KEY);
  if (!cred) {
    const key = Secret.adopt(await hsm.randomBytes(32));
    try {
      const value: WrappedInternalKey = { blob: (await hsm.wrapSecret(key)).toString("base64"), masterKcv, createdAt: now().toISOString() };
      await internal.commit({ mutations: [{ op: "put", key: CREDENTIAL_KEY, value: value as unknown as JsonValue, expectVersion: 0 }] });
    } finally {
      key.dispose();
    }
    cred = await internal.get<WrappedInternalKey>(CREDENTIAL_KEY);
  }
  const credentialKey = await hsm.unwrapSecret(Buffer.from(cred!.value.blob, "base64"));
  return { masterKcv, auditSigningKey, auditPublicKey, credentialKey };
}
