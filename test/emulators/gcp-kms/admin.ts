// The Cloud KMS emulator's admin interface: the common one (faults, call log, captures, clock, reset; see
// ../common/admin-http.ts) plus GCP state, KCVs and out-of-band changes. In-process here; over HTTP via adminRoutes().
import { AdminError, commonAdminRoutes, type AdminRoute, type CommonAdmin } from "../common/admin-http.js";
import type { FaultInjector } from "../common/faults.js";
import type { BoundedLog, CallRecord } from "../common/records.js";
import { GcpError, type GcpCapturedImport, type GcpKmsBackend, type GcpKmsState } from "./backend.js";

/** A call as logged: `status` is the HTTP equivalent of the gRPC code (0 = left unanswered), `error` its name. */
export interface GcpCallRecord extends CallRecord {
  /** The gRPC status code answered (0 = OK); absent for calls left unanswered. */
  grpcCode?: number;
}

export interface GcpKmsAdmin extends CommonAdmin {
  calls(limit?: number): GcpCallRecord[];
  imports(limit?: number): GcpCapturedImport[];
  /** Full state: key rings, crypto keys with versions (state, primary, KCV), import jobs. */
  state(): GcpKmsState;
  /** KCV (hex) per version name, for versions that hold material (README: method per algorithm). */
  kcvs(): Record<string, string>;
  kcv(versionName: string): string | undefined;
  /** The material a version holds (symmetric: raw bytes; asymmetric: PKCS#8 DER), to prove what arrived. */
  material(versionName: string): Buffer;
  // Out-of-band changes, as if someone used the console behind MCKO's back. Names are full resource names.
  enableVersion(name: string): void;
  disableVersion(name: string): void;
  /** DESTROY_SCHEDULED with destroy_time = now + the key's destroy_scheduled_duration. */
  scheduleDestroy(name: string): void;
  /** DESTROYED at once, material erased. */
  destroyVersion(name: string): void;
  /** Symmetric: raw key bytes; asymmetric: PKCS#8 DER. Must fit the version's algorithm. */
  replaceMaterial(versionName: string, material: Buffer): void;
  setLabels(cryptoKeyName: string, labels: Record<string, string>): void;
  /** Removes a crypto key entirely (a later Get answers NOT_FOUND). */
  deleteCryptoKey(cryptoKeyName: string): void;
  expireImportJob(name: string): void;
  /** Resolves when every import job's key pair has been generated. */
  settled(): Promise<void>;
}

/** Admin errors for unknown names become 404, bad input 400. */
function adminCall<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof GcpError) throw new AdminError(e.code === 5 ? 404 : e.code === 9 ? 409 : 400, e.message);
    throw e;
  }
}

export function makeGcpKmsAdmin(backend: GcpKmsBackend, faults: FaultInjector, calls: BoundedLog<GcpCallRecord>): GcpKmsAdmin {
  const kcvs = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const k of backend.snapshot().cryptoKeys) for (const v of k.versions) if (v.kcv) out[v.name] = v.kcv;
    return out;
  };
  return {
    setFaults: (c) => faults.set(c),
    failNext: (f) => faults.failNext(f),
    clearFaults: () => faults.clear(),
    faults: () => faults.snapshot(),
    calls: (limit) => calls.list(limit),
    clearCalls: () => calls.clear(),
    waitForCall: (predicate) => calls.waitFor(predicate),
    imports: (limit) => backend.imports.list(limit),
    advanceClock: (seconds) => backend.clock.advance(seconds),
    reset: () => {
      backend.reset();
      calls.clear();
      faults.clear();
    },
    state: () => backend.snapshot(),
    kcvs,
    kcv: (name) => kcvs()[name],
    material: (name) => adminCall(() => backend.adminMaterial(name)),
    enableVersion: (name) => adminCall(() => backend.adminSetVersionState(name, "ENABLED")),
    disableVersion: (name) => adminCall(() => backend.adminSetVersionState(name, "DISABLED")),
    scheduleDestroy: (name) => adminCall(() => backend.adminSetVersionState(name, "DESTROY_SCHEDULED")),
    destroyVersion: (name) => adminCall(() => backend.adminSetVersionState(name, "DESTROYED")),
    replaceMaterial: (name, material) => adminCall(() => backend.adminReplaceMaterial(name, material)),
    setLabels: (name, labels) => adminCall(() => backend.adminSetLabels(name, labels)),
    deleteCryptoKey: (name) => adminCall(() => backend.adminDeleteCryptoKey(name)),
    expireImportJob: (name) => adminCall(() => backend.adminExpireImportJob(name)),
    settled: () => backend.settled(),
  };
}

const str = (v: unknown, name: string): string => {
  if (typeof v !== "string" || v === "") throw new AdminError(400, `${name} must be a non-empty string`);
  return v;
};

/**
 * HTTP routes (under /_emulator, JSON, Buffers as base64), besides the common ones:
 *   GET  /state, /kcv, /versions/material?name=<version> (base64)
 *   POST /versions/{enable|disable|schedule-destroy|destroy} {name}
 *   POST /versions/material {name, material: base64}
 *   PUT  /keys/labels {name, labels};  POST /keys/delete {name};  POST /import-jobs/expire {name}
 */
export function gcpAdminRoutes(admin: GcpKmsAdmin): AdminRoute[] {
  return [
    ...commonAdminRoutes(admin),
    { method: "GET", path: /^\/state$/, handler: () => admin.state() },
    { method: "GET", path: /^\/kcv$/, handler: () => admin.kcvs() },
    { method: "GET", path: /^\/versions\/material$/, handler: ({ query }) => admin.material(str(query.get("name") ?? "", "name")) },
    { method: "POST", path: /^\/versions\/enable$/, handler: ({ body }) => admin.enableVersion(str(body["name"], "name")) },
    { method: "POST", path: /^\/versions\/disable$/, handler: ({ body }) => admin.disableVersion(str(body["name"], "name")) },
    { method: "POST", path: /^\/versions\/schedule-destroy$/, handler: ({ body }) => admin.scheduleDestroy(str(body["name"], "name")) },
    { method: "POST", path: /^\/versions\/destroy$/, handler: ({ body }) => admin.destroyVersion(str(body["name"], "name")) },
    {
      method: "POST",
      path: /^\/versions\/material$/,
      handler: ({ body }) => admin.replaceMaterial(str(body["name"], "name"), Buffer.from(str(body["material"], "material"), "base64")),
    },
    {
      method: "PUT",
      path: /^\/keys\/labels$/,
      handler: ({ body }) => admin.setLabels(str(body["name"], "name"), (body["labels"] ?? {}) as Record<string, string>),
    },
    { method: "POST", path: /^\/keys\/delete$/, handler: ({ body }) => admin.deleteCryptoKey(str(body["name"], "name")) },
    { method: "POST", path: /^\/import-jobs\/expire$/, handler: ({ body }) => admin.expireImportJob(str(body["name"], "name")) },
  ];
}
