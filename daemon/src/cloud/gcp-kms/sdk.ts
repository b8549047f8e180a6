/**
 * The narrow surface of @google-cloud/kms the connector uses: one method per Cloud KMS RPC, with MCKO's own plain
 * types (enum names as strings, times as Dates), built from settings with the configurable endpoint. A plaintext
 * endpoint (emulator) gets insecure channel credentials and no Google auth at all; a TLS endpoint gets the service
 * account JSON or, without one, the application default credentials. `universeDomain` is always set, so
 * google-auth-library never probes the GCE metadata server for it (STACK.md gotcha 25). The SDK's own retries are
 * off (`retry: null`): call-policy.ts retries. The SDK is loaded on first use (it costs most of a second).
 */
import type { KeyManagementServiceClient, protos as Protos } from "@google-cloud/kms";
import type { GcpCredentialsJson, GcpKmsSettings } from "./config.js";

type Opts = { readonly abortSignal: AbortSignal };
type V1 = typeof Protos.google.cloud.kms.v1;

export interface GcpVersion {
  readonly name: string;
  /** The version id (the last name segment), e.g. "3". */
  readonly id: string;
  readonly state: string;
  readonly algorithm: string;
  readonly importJob: string;
  readonly importFailureReason: string;
}

export interface GcpCryptoKey {
  readonly name: string;
  readonly purpose: string;
  /** The primary version (ENCRYPT_DECRYPT keys only). */
  readonly primary: GcpVersion | undefined;
  readonly algorithm: string;
  readonly protectionLevel: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly importOnly: boolean;
  /** destroy_scheduled_duration in seconds. */
  readonly destroyScheduledSeconds: number;
}

export interface GcpImportJob {
  readonly name: string;
  readonly importMethod: string;
  readonly protectionLevel: string;
  readonly state: string;
  readonly expireTime: Date | undefined;
  readonly publicKeyPem: string | undefined;
}

export interface NewCryptoKey {
  readonly purpose: string;
  readonly algorithm: string;
  readonly protectionLevel: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly destroyScheduledSeconds: number;
}

export interface GcpKmsApi {
  getKeyRing(name: string, o: Opts): Promise<void>;
  createKeyRing(parent: string, id: string, o: Opts): Promise<void>;
  /** At most one key ring of the location (proves access to project and location). */
  listKeyRings(parent: string, o: Opts): Promise<string[]>;
  getCryptoKey(name: string, o: Opts): Promise<GcpCryptoKey>;
  /** An import-only CryptoKey without versions. */
  createCryptoKey(parent: string, id: string, key: NewCryptoKey, o: Opts): Promise<GcpCryptoKey>;
  listCryptoKeys(parent: string, o: Opts): Promise<GcpCryptoKey[]>;
  updateLabels(name: string, labels: Readonly<Record<string, string>>, o: Opts): Promise<void>;
  updatePrimaryVersion(name: string, versionId: string, o: Opts): Promise<void>;
  listImportJobs(parent: string, o: Opts): Promise<GcpImportJob[]>;
  createImportJob(parent: string, id: string, importMethod: string, protectionLevel: string, o: Opts): Promise<GcpImportJob>;
  getImportJob(name: string, o: Opts): Promise<GcpImportJob>;
  importVersion(parent: string, algorithm: string, importJob: string, wrappedKey: Buffer, o: Opts): Promise<GcpVersion>;
  getVersion(name: string, o: Opts): Promise<GcpVersion>;
  listVersions(parent: string, o: Opts): Promise<GcpVersion[]>;
  setVersionState(name: string, state: "ENABLED" | "DISABLED", o: Opts): Promise<void>;
  destroyVersion(name: string, o: Opts): Promise<void>;
  close(): void;
}

type Sdk = typeof import("@google-cloud/kms");
let sdk: Promise<Sdk> | undefined;
let grpcJs: Promise<typeof import("@grpc/grpc-js")> | undefined;

/** A number-or-name enum value as its name. */
function enumName(e: Record<string | number, string | number>, v: unknown): string {
  if (typeof v === "number") return String(e[v] ?? v);
  return typeof v === "string" ? v : "";
}

function seconds(t: { seconds?: unknown } | null | undefined): number {
  const s = t?.seconds;
  return s === undefined || s === null ? 0 : Number(typeof s === "object" ? String(s) : s);
}

/** `attemptTimeoutMs` becomes each call's gRPC deadline, so an abandoned attempt does not run on at the cloud. */
export function createGcpKmsApi(settings: GcpKmsSettings, credentials: GcpCredentialsJson | undefined, attemptTimeoutMs: number): GcpKmsApi {
  let ready: Promise<{ client: KeyManagementServiceClient; v1: V1 }> | undefined;
  let closed = false;
  const open = () =>
    (ready ??= (async () => {
      const k = await (sdk ??= import("@google-cloud/kms"));
      const ep = settings.endpoint;
      const base = { universeDomain: "googleapis.com", ...(ep ? { apiEndpoint: ep.host, port: ep.port } : {}) };
      let client: KeyManagementServiceClient;
      if (ep?.plaintext) {
        const grpc = await (grpcJs ??= import("@grpc/grpc-js"));
        client = new k.KeyManagementServiceClient({ ...base, sslCreds: grpc.credentials.createInsecure() });
      } else {
        client = new k.KeyManagementServiceClient({ ...base, projectId: settings.project, ...(credentials ? { credentials } : {}) });
      }
      return { client, v1: k.protos.google.cloud.kms.v1 };
    })());

  // Every call: no SDK retry, the attempt's time bound as the gRPC deadline, and the abort signal ends the wait.
  const run = async <T>(o: Opts, fn: (c: KeyManagementServiceClient, opts: { retry: null; timeout: number }, v1: V1) => Promise<T>): Promise<T> => {
    const { client, v1 } = await open();
    if (o.abortSignal.aborted) throw abortError();
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(abortError());
      o.abortSignal.addEventListener("abort", onAbort, { once: true });
      fn(client, { retry: null, timeout: attemptTimeoutMs }, v1).then(
        (v) => {
          o.abortSignal.removeEventListener("abort", onAbort);
          resolve(v);
        },
        (e: unknown) => {
          o.abortSignal.removeEventListener("abort", onAbort);
          reject(e);
        },
      );
    });
  };

  const version = (v1: V1, x: Protos.google.cloud.kms.v1.ICryptoKeyVersion | null | undefined): GcpVersion => {
    const name = x?.name ?? "";
    return {
      name,
      id: name.slice(name.lastIndexOf("/") + 1),
      state: enumName(v1.CryptoKeyVersion.CryptoKeyVersionState as unknown as Record<string, string>, x?.state),
      algorithm: enumName(v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm as unknown as Record<string, string>, x?.algorithm),
      importJob: x?.importJob ?? "",
      importFailureReason: x?.importFailureReason ?? "",
    };
  };
  const cryptoKey = (v1: V1, x: Protos.google.cloud.kms.v1.ICryptoKey): GcpCryptoKey => ({
    name: x.name ?? "",
    purpose: enumName(v1.CryptoKey.CryptoKeyPurpose as unknown as Record<string, string>, x.purpose),
    primary: x.primary?.name ? version(v1, x.primary) : undefined,
    algorithm: enumName(v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm as unknown as Record<string, string>, x.versionTemplate?.algorithm),
    protectionLevel: enumName(v1.ProtectionLevel as unknown as Record<string, string>, x.versionTemplate?.protectionLevel),
    labels: { ...(x.labels ?? {}) },
    importOnly: x.importOnly === true,
    destroyScheduledSeconds: seconds(x.destroyScheduledDuration),
  });
  const importJob = (v1: V1, x: Protos.google.cloud.kms.v1.IImportJob): GcpImportJob => ({
    name: x.name ?? "",
    importMethod: enumName(v1.ImportJob.ImportMethod as unknown as Record<string, string>, x.importMethod),
    protectionLevel: enumName(v1.ProtectionLevel as unknown as Record<string, string>, x.protectionLevel),
    state: enumName(v1.ImportJob.ImportJobState as unknown as Record<string, string>, x.state),
    expireTime: x.expireTime ? new Date(seconds(x.expireTime) * 1000) : undefined,
    publicKeyPem: x.publicKey?.pem ?? undefined,
  });

  return {
    getKeyRing: (name, o) => run(o, async (c, opts) => void (await c.getKeyRing({ name }, opts))),
    createKeyRing: (parent, keyRingId, o) => run(o, async (c, opts) => void (await c.createKeyRing({ parent, keyRingId, keyRing: {} }, opts))),
    listKeyRings: (parent, o) => run(o, async (c, opts) => (await c.listKeyRings({ parent, pageSize: 1 }, { ...opts, autoPaginate: false }))[0].map((r) => r.name ?? "")),
    getCryptoKey: (name, o) => run(o, async (c, opts, v1) => cryptoKey(v1, (await c.getCryptoKey({ name }, opts))[0])),
    createCryptoKey: (parent, cryptoKeyId, key, o) =>
      run(o, async (c, opts, v1) =>
        cryptoKey(
          v1,
          (
            await c.createCryptoKey(
              {
                parent,
                cryptoKeyId,
                skipInitialVersionCreation: true,
                cryptoKey: {
                  purpose: key.purpose as keyof typeof v1.CryptoKey.CryptoKeyPurpose,
                  importOnly: true,
                  versionTemplate: {
                    algorithm: key.algorithm as keyof typeof v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm,
                    protectionLevel: key.protectionLevel as keyof typeof v1.ProtectionLevel,
                  },
                  labels: { ...key.labels },
                  destroyScheduledDuration: { seconds: key.destroyScheduledSeconds, nanos: 0 },
                },
              },
              opts,
            )
          )[0],
        ),
      ),
    listCryptoKeys: (parent, o) => run(o, async (c, opts, v1) => (await c.listCryptoKeys({ parent }, opts))[0].map((x) => cryptoKey(v1, x))),
    updateLabels: (name, labels, o) => run(o, async (c, opts) => void (await c.updateCryptoKey({ cryptoKey: { name, labels: { ...labels } }, updateMask: { paths: ["labels"] } }, opts))),
    updatePrimaryVersion: (name, cryptoKeyVersionId, o) => run(o, async (c, opts) => void (await c.updateCryptoKeyPrimaryVersion({ name, cryptoKeyVersionId }, opts))),
    listImportJobs: (parent, o) => run(o, async (c, opts, v1) => (await c.listImportJobs({ parent }, opts))[0].map((x) => importJob(v1, x))),
    createImportJob: (parent, importJobId, method, level, o) =>
      run(o, async (c, opts, v1) =>
        importJob(
          v1,
          (
            await c.createImportJob(
              { parent, importJobId, importJob: { importMethod: method as keyof typeof v1.ImportJob.ImportMethod, protectionLevel: level as keyof typeof v1.ProtectionLevel } },
              opts,
            )
          )[0],
        ),
      ),
    getImportJob: (name, o) => run(o, async (c, opts, v1) => importJob(v1, (await c.getImportJob({ name }, opts))[0])),
    importVersion: (parent, algorithm, job, wrappedKey, o) =>
      run(o, async (c, opts, v1) =>
        version(v1, (await c.importCryptoKeyVersion({ parent, algorithm: algorithm as keyof typeof v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm, importJob: job, wrappedKey }, opts))[0]),
      ),
    getVersion: (name, o) => run(o, async (c, opts, v1) => version(v1, (await c.getCryptoKeyVersion({ name }, opts))[0])),
    listVersions: (parent, o) => run(o, async (c, opts, v1) => (await c.listCryptoKeyVersions({ parent }, opts))[0].map((x) => version(v1, x))),
    setVersionState: (name, state, o) => run(o, async (c, opts) => void (await c.updateCryptoKeyVersion({ cryptoKeyVersion: { name, state }, updateMask: { paths: ["state"] } }, opts))),
    destroyVersion: (name, o) => run(o, async (c, opts) => void (await c.destroyCryptoKeyVersion({ name }, opts))),
    close: () => {
      if (closed) return;
      closed = true;
      void ready?.then(({ client }) => client.close(), () => undefined).catch(() => undefined);
    },
  };
}

function abortError(): Error {
  const e = new Error("the call took longer than the attempt timeout");
  e.name = "TimeoutError";
  return e;
}
