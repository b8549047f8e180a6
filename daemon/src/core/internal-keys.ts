/**
 * The daemon's own keys, kept in the internal store (a separate file no API reaches), wrapped under the master
 * key: the Ed25519 audit signing key and the AES-256 credential-encryption key. Also the master key's KCV as the
 * vault recorded it, checked on every start.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import type { Hsm } from "../hsm/hsm.js";
import type { JsonValue, Mutation, Store } from "../store/store.js";
import { Secret } from "../util/secret.js";
import { InternalError } from "./errors.js";

export const MASTER_RECORD_KEY = "internal/master";
const MASTER = MASTER_RECORD_KEY;
const AUDIT_KEY = "internal/audit-signing-key";
const CREDENTIAL_KEY = "internal/credential-key";

export interface MasterRecord {
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

/** What the HSM's current master must be at start; a pending master-key rotation changes it (master-key-rotation.ts). */
export interface StartupMaster {
  /** The expected current master KCV (default: the recorded one). */
  readonly expected?: string | undefined;
  /** A rotation was interrupted while the HSM created its new master: another current master is accepted. */
  readonly newerMasterPossible?: boolean;
}

/**
 * Checks the master KCV against the record (recording it on first start) and loads or creates the internal keys.
 * The internal keys unwrap under any master the HSM holds (during a rotation they may still be under the old one).
 */
export async function loadInternalKeys(internal: Store, hsm: Hsm, now: () => Date, startup: StartupMaster = {}): Promise<InternalKeys> {
  const masterKcv = await hsm.masterKeyCheckValue();
  const recorded = await internal.get<MasterRecord>(MASTER);
  const expected = startup.expected ?? recorded?.value.kcv;
  if (expected !== undefined && expected !== masterKcv && !startup.newerMasterPossible) {
    throw new StartupError(
      `master key mismatch: this vault was created under master key KCV ${expected}, but the ${hsm.kind} HSM's master key has KCV ${masterKcv}. ` +
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

/**
 * Master-key rotation's last step: re-wraps the internal keys under the HSM's current master (`target`) and
 * switches the master record to it, in one internal-store commit (so a start sees both or neither).
 */
export async function rewrapInternalKeys(internal: Store, hsm: Hsm, target: string, now: Date): Promise<void> {
  const current = await hsm.masterKeyCheckValue();
  if (current !== target) throw new InternalError(`the HSM's current master is ${current}, not the rotation's new master ${target}`);
  const master = await internal.get<MasterRecord>(MASTER);
  const mutations: Mutation[] = [];
  for (const key of [AUDIT_KEY, CREDENTIAL_KEY]) {
    const rec = await internal.get<WrappedInternalKey>(key);
    if (!rec) continue;
    const secret = await hsm.unwrapSecret(Buffer.from(rec.value.blob, "base64"));
    try {
      const value: WrappedInternalKey = { ...rec.value, blob: (await hsm.wrapSecret(secret)).toString("base64"), masterKcv: target };
      mutations.push({ op: "put", key, value: value as unknown as JsonValue, expectVersion: rec.version });
    } finally {
      secret.dispose();
    }
  }
  const value: MasterRecord = { kcv: target, backend: hsm.kind, recordedAt: now.toISOString() };
  mutations.push({ op: "put", key: MASTER, value: value as unknown as JsonValue, expectVersion: master?.version ?? 0 });
  await internal.commit({ mutations });
}
