/**
 * Composition root: the only place that constructs implementations. `startDaemon` opens the stores, the HSM and
 * the internal keys, builds core and API, binds the server and returns a handle whose `stop()` drains and closes
 * everything. Lifecycle: STARTING → SERVING → DRAINING → STOPPED.
 */
import { randomUUID, type KeyObject } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import tls from "node:tls";
import { AuditLog, type Actor } from "./core/audit/audit-log.js";
import { AuditSealer } from "./core/audit/chain.js";
import { SYSTEM_PRINCIPAL } from "./core/authz.js";
import { systemClock, type Clock } from "./core/clock.js";
import { StartupError, loadInternalKeys } from "./core/internal-keys.js";
import { MasterKeyRotationService, startupMasterKcv } from "./core/master-key-rotation.js";
import { KeyService, type KeyChangeListener } from "./core/keys.js";
import { KeystoreService } from "./core/keystores.js";
import { DistributionService } from "./core/distributions.js";
import { CredentialCipher } from "./core/credential-cipher.js";
import { ConnectorRegistry } from "./cloud/registry.js";
import { awsKmsFactory } from "./cloud/aws-kms/connector.js";
import { azureKeyVaultFactory } from "./cloud/azure-keyvault/connector.js";
import { ibmKeyProtectFactory } from "./cloud/ibm-key-protect/connector.js";
import { pkcs11TokenFactory } from "./cloud/pkcs11-token/connector.js";
import { gcpKmsFactory } from "./cloud/gcp-kms/connector.js";
import type { Secret } from "./util/secret.js";
import { KeyedLock, KeyedRwLock } from "./core/locks.js";
import { VaultService } from "./core/vaults.js";
import { bind, buildServer, setServing } from "./api/server.js";
import type { DaemonConfig } from "./config/config.js";
import { applyModuleEnv, readHsmPin } from "./config/hsm-secrets.js";
import { HsmError, type Hsm } from "./hsm/hsm.js";
import { SoftwareHsm } from "./hsm/software/software-hsm.js";
import type { Logger } from "./log/logger.js";
import { LowdbStore } from "./store/lowdb/lowdb-store.js";
import type { Store } from "./store/store.js";

export type DaemonState = "STARTING" | "SERVING" | "DRAINING" | "STOPPED";

export interface RunningDaemon {
  readonly port: number;
  readonly state: () => DaemonState;
  /** Drains in-flight calls (up to the grace period), then closes the server, the stores and the HSM. */
  stop(): Promise<void>;
}

export function vaultDir(config: DaemonConfig): string {
  return join(config.dataDir, "vault");
}
export function internalDir(config: DaemonConfig): string {
  return join(config.dataDir, "internal");
}
export function journalFile(config: DaemonConfig): string {
  return join(vaultDir(config), "audit.jsonl");
}

export async function openHsm(config: DaemonConfig, expectedMasterKcv: string | undefined): Promise<Hsm> {
  if (config.hsm.backend === "software") {
    return SoftwareHsm.create({ masterKeyFile: config.hsm.masterKeyFile, ...(expectedMasterKcv ? { expectedMasterKcv } : {}) });
  }
  applyModuleEnv(config);
  const pin = readHsmPin(config.hsm, config.hsmPinFromEnv);
  try {
    // Loaded lazily: the native module is only needed on the pkcs11 path.
    const { Pkcs11Hsm } = await import("./hsm/pkcs11/pkcs11-hsm.js");
    return await Pkcs11Hsm.create({
      modulePath: config.hsm.modulePath,
      tokenLabel: config.hsm.tokenLabel,
      masterKeyLabel: config.hsm.masterKeyLabel,
      pin,
      ...(expectedMasterKcv ? { expectedMasterKcv } : {}),
      ...(config.hsm.sessions !== undefined ? { sessionPoolSize: config.hsm.sessions } : {}),
    });
  } finally {
    pin.dispose();
  }
}

export async function startDaemon(config: DaemonConfig, log: Logger, clock: Clock = systemClock): Promise<RunningDaemon> {
  let state: DaemonState = "STARTING";
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const [caPem, certPem, keyPem] = await Promise.all([readFile(config.tls.caCertFile), readFile(config.tls.certFile), readFile(config.tls.keyFile)]);

  const internal: Store = await LowdbStore.open({ dir: internalDir(config) });
  let hsm: Hsm | undefined;
  let store: Store | undefined;
  try {
    const startup = await startupMasterKcv(internal);
    try {
      hsm = await openHsm(config, startup.expected);
    } catch (e) {
      // A rotation interrupted while the HSM made its new master: a software keyring may already name it current.
      if (!(startup.newerMasterPossible && e instanceof HsmError && e.reason === "HSM_MASTER_KEY_MISMATCH")) throw e;
      hsm = await openHsm(config, undefined);
    }
    const keys = await loadInternalKeys(internal, hsm, () => clock.now(), startup);
    store = await LowdbStore.open({ dir: vaultDir(config), sealer: new AuditSealer(keys.auditSigningKey) });
    return await serve(config, log, clock, { internal, hsm, store, auditPublicKey: keys.auditPublicKey, credentialKey: keys.credentialKey, dispose: () => keys.credentialKey.dispose() }, caPem, certPem, keyPem, (s) => (state = s), () => state);
  } catch (e) {
    await store?.close().catch(() => undefined);
    await hsm?.close().catch(() => undefined);
    await internal.close().catch(() => undefined);
    throw e;
  }
}

interface Opened {
  readonly internal: Store;
  readonly hsm: Hsm;
  readonly store: Store;
  readonly auditPublicKey: KeyObject;
  readonly credentialKey: Secret;
  readonly dispose: () => void;
}

async function serve(
  config: DaemonConfig,
  log: Logger,
  clock: Clock,
  opened: Opened,
  caPem: Buffer,
  certPem: Buffer,
  keyPem: Buffer,
  setState: (s: DaemonState) => void,
  getState: () => DaemonState,
): Promise<RunningDaemon> {
  const { store, hsm, internal } = opened;
  const ids = { uuid: () => randomUUID() };
  const vaultLock = new KeyedRwLock();
  const audit = new AuditLog({ store, clock, journalFile: journalFile(config), publicKey: opened.auditPublicKey });
  const keyListeners: KeyChangeListener[] = [];
  const vaults = new VaultService({ store, audit, clock, ids, vaultLock });
  const keyLock = new KeyedLock();
  const keys = new KeyService({ store, hsm, audit, clock, ids, keyLock, vaultLock, listeners: keyListeners });
  const masterKeyRotation = new MasterKeyRotationService({
    internal,
    store,
    hsm,
    audit,
    clock,
    ids,
    keyLock,
    vaultLock,
    batchSize: config.masterKeyRotation.batchSize,
    ...(config.masterKeyRotation.haltAfterKeys !== undefined ? { haltAfterKeys: config.masterKeyRotation.haltAfterKeys } : {}),
    onError: (message) => log.error({ err: message }, "master key rotation stopped; it resumes on the next start or RotateMasterKey"),
  });
  await keys.loadSchedule(await vaults.ids());
  const keystores = new KeystoreService({
    store,
    audit,
    clock,
    ids,
    registry: new ConnectorRegistry([awsKmsFactory, azureKeyVaultFactory, gcpKmsFactory, pkcs11TokenFactory, ibmKeyProtectFactory]),
    cipher: new CredentialCipher(opened.credentialKey),
    vaultLock,
    keystoreLock: new KeyedLock(),
    cloudAttemptTimeoutMs: config.cloudAttemptTimeoutMs,
    cloudDeadlineMs: config.cloudDeadlineMs,
  });
  const distributions = new DistributionService({ store, hsm, audit, clock, ids, keys, keystores, lock: new KeyedLock(), log });
  keyListeners.push(distributions);

  // TLS 1.3 only, for every TLS context this daemon process creates (the server's included).
  tls.DEFAULT_MIN_VERSION = "TLSv1.3";
  const built = buildServer({ log, audit, keys, vaults, keystores, distributions, masterKeyRotation, isDraining: () => getState() !== "SERVING", tls: { caPem, certPem, keyPem }, maxRequestBytes: config.maxRequestBytes });
  let port: number;
  try {
    port = await bind(built.server, config.listen.host, config.listen.port, built.credentials);
  } catch (e) {
    const why = e instanceof Error && /EADDRINUSE/.test(e.message) ? "the address is already in use (is another mckod running?)" : e instanceof Error ? e.message : String(e);
    throw new StartupError(`cannot listen on ${config.listen.host}:${config.listen.port}: ${why}`);
  }
  setState("SERVING");
  setServing(built.health, true);

  const systemActor = (method: string): Actor => ({ principal: SYSTEM_PRINCIPAL, method });
  let ticking = false;
  const timer = setInterval(() => {
    if (ticking || getState() !== "SERVING") return;
    ticking = true;
    keys
      .runSchedule(systemActor)
      .then((n) => n > 0 && log.info({ changed: n }, "scheduled key transitions applied"))
      .catch((e: unknown) => log.error({ err: e instanceof Error ? e.message : String(e) }, "scheduler tick failed"))
      .finally(() => (ticking = false));
  }, config.schedulerIntervalMs);
  timer.unref();

  const hsmSessions = "sessionCount" in hsm && typeof hsm.sessionCount === "number" ? { hsmSessions: hsm.sessionCount } : {};
  log.info({ host: config.listen.host, port, hsm: hsm.kind, ...hsmSessions, dataDir: config.dataDir }, "mckod serving");
  // Finish pushes a crash interrupted and catch up with key changes, now and periodically.
  let reconciling = false;
  const reconcile = () => {
    if (reconciling || getState() !== "SERVING") return;
    reconciling = true;
    vaults
      .ids()
      .then((ids) => distributions.reconcile(ids))
      .then((n) => n > 0 && log.info({ distributions: n }, "reconciler converged distributions"))
      .catch((e: unknown) => log.error({ err: e instanceof Error ? e.message : String(e) }, "reconciler pass failed"))
      .finally(() => (reconciling = false));
  };
  reconcile();
  const reconcileTimer = setInterval(reconcile, config.reconcileIntervalMs);
  reconcileTimer.unref();
  // A master-key rotation interrupted by a stop or a crash carries on in the background.
  masterKeyRotation.resume();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      setState("DRAINING");
      setServing(built.health, false);
      clearInterval(timer);
      clearInterval(reconcileTimer);
      await masterKeyRotation.stop();
      log.info({ graceMs: config.shutdownGraceMs }, "draining");
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          log.warn("grace period over: cancelling the calls still running");
          built.server.forceShutdown();
          resolve();
        }, config.shutdownGraceMs);
        built.server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await distributions.drain();
      keystores.close();
      await store.close();
      await internal.close();
      await hsm.close();
      opened.dispose();
      setState("STOPPED");
      log.info("stopped");
    })());
  return { port, state: getState, stop };
}
