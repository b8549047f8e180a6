// Serves google.cloud.kms.v1.KeyManagementService over plaintext gRPC on loopback (STACK.md §9.3), with the
// admin HTTP API (../common/admin-http.ts, routes under /_emulator) on a second loopback port.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { startAdminServer } from "../common/admin-http.js";
import { FaultInjector, type FaultKind } from "../common/faults.js";
import { delay } from "../common/http.js";
import { BoundedLog } from "../common/records.js";
import { gcpAdminRoutes, makeGcpKmsAdmin, type GcpCallRecord, type GcpKmsAdmin } from "./admin.js";
import { GcpError, GcpKmsBackend, type Req, type Res } from "./backend.js";

export interface GcpKmsEmulatorOptions {
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** gRPC port; 0 (default) picks a free one. */
  port?: number;
  /** Port of the admin HTTP interface; 0 (default) picks a free one. */
  adminPort?: number;
  /** Projects callers may use; others get PERMISSION_DENIED. Absent = every project. */
  projects?: string[];
  /** Reuse one RSA wrapping key per size across import jobs (fast tests). Default false: a fresh key per job, as GCP. */
  reuseWrappingKeys?: boolean;
  /** How many import requests to keep for inspection; default 100. */
  captureLimit?: number;
  /** How many calls the call log keeps; default 10000. */
  callLogLimit?: number;
}

export interface GcpKmsEmulator {
  /** "HOST:PORT"; KeyManagementServiceClient takes apiEndpoint HOST (an IP: STACK.md gotcha 13) and `port`. */
  endpoint: string;
  port: number;
  /** Base URL of the admin HTTP interface (routes under /_emulator). */
  adminUrl: string;
  admin: GcpKmsAdmin;
  close(): Promise<void>;
}

/** Resolves @google-cloud/kms's and google-gax's proto folders (gax has an exports map: STACK.md gotcha 26). */
function protoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const kmsRoot = dirname(require.resolve("@google-cloud/kms/package.json"));
  const gaxIndex = require.resolve("google-gax", { paths: [kmsRoot] });
  return [join(kmsRoot, "build/protos"), join(gaxIndex, "../../protos")];
}

let cachedService: grpc.ServiceDefinition | undefined;

function kmsService(): grpc.ServiceDefinition {
  if (cachedService) return cachedService;
  const def = protoLoader.loadSync("google/cloud/kms/v1/service.proto", {
    includeDirs: protoIncludeDirs(), keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    google: { cloud: { kms: { v1: { KeyManagementService: { service: grpc.ServiceDefinition } } } } };
  };
  cachedService = pkg.google.cloud.kms.v1.KeyManagementService.service;
  return cachedService;
}

type Handler = (req: Req) => Res | Promise<Res>;

/** RPC → IAM permission and the resource name it addresses. */
const RPCS: Readonly<Record<string, { permission: string; target: (r: Req) => string | undefined }>> = (() => {
  const name = (r: Req) => r.name;
  const parent = (r: Req) => r.parent;
  const t = (permission: string, target: (r: Req) => string | undefined) => ({ permission, target });
  return {
    CreateKeyRing: t("cloudkms.keyRings.create", parent),
    GetKeyRing: t("cloudkms.keyRings.get", name),
    ListKeyRings: t("cloudkms.keyRings.list", parent),
    CreateCryptoKey: t("cloudkms.cryptoKeys.create", parent),
    GetCryptoKey: t("cloudkms.cryptoKeys.get", name),
    ListCryptoKeys: t("cloudkms.cryptoKeys.list", parent),
    UpdateCryptoKey: t("cloudkms.cryptoKeys.update", (r) => r.crypto_key?.name),
    UpdateCryptoKeyPrimaryVersion: t("cloudkms.cryptoKeys.update", name),
    CreateImportJob: t("cloudkms.importJobs.create", parent),
    GetImportJob: t("cloudkms.importJobs.get", name),
    ListImportJobs: t("cloudkms.importJobs.list", parent),
    ImportCryptoKeyVersion: t("cloudkms.cryptoKeyVersions.create", parent),
    CreateCryptoKeyVersion: t("cloudkms.cryptoKeyVersions.create", parent),
    GetCryptoKeyVersion: t("cloudkms.cryptoKeyVersions.get", name),
    ListCryptoKeyVersions: t("cloudkms.cryptoKeyVersions.list", parent),
    UpdateCryptoKeyVersion: t("cloudkms.cryptoKeyVersions.update", (r) =>
      typeof r.crypto_key_version === "object" && r.crypto_key_version ? r.crypto_key_version.name : undefined),
    DestroyCryptoKeyVersion: t("cloudkms.cryptoKeyVersions.destroy", name),
    RestoreCryptoKeyVersion: t("cloudkms.cryptoKeyVersions.restore", name),
    Encrypt: t("cloudkms.cryptoKeyVersions.useToEncrypt", name),
    Decrypt: t("cloudkms.cryptoKeyVersions.useToDecrypt", name),
    AsymmetricSign: t("cloudkms.cryptoKeyVersions.useToSign", name),
    AsymmetricDecrypt: t("cloudkms.cryptoKeyVersions.useToDecrypt", name),
    GetPublicKey: t("cloudkms.cryptoKeyVersions.viewPublicKey", name),
    MacSign: t("cloudkms.cryptoKeyVersions.useToSign", name),
    MacVerify: t("cloudkms.cryptoKeyVersions.useToVerify", name),
  };
})();

/** google.rpc.Code → HTTP status, for the common call log. */
const HTTP_OF: Readonly<Record<number, number>> = {
  0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501, 13: 500,
  14: 503, 15: 500, 16: 401,
};

function faultError(kind: Exclude<FaultKind, "timeout">): GcpError {
  return kind === "throttle"
    ? new GcpError(grpc.status.RESOURCE_EXHAUSTED, "Quota exceeded for quota metric 'Cryptographic requests' and limit 'Cryptographic requests per minute' of service 'cloudkms.googleapis.com'.")
    : new GcpError(grpc.status.UNAVAILABLE, "The service is currently unavailable.");
}

export async function startGcpKmsEmulator(opts: GcpKmsEmulatorOptions = {}): Promise<GcpKmsEmulator> {
  const host = opts.host ?? "127.0.0.1";
  const backend = new GcpKmsBackend({ projects: opts.projects, reuseWrappingKeys: opts.reuseWrappingKeys, captureLimit: opts.captureLimit });
  const faults = new FaultInjector();
  const calls = new BoundedLog<GcpCallRecord>(opts.callLogLimit ?? 10_000);
  const admin = makeGcpKmsAdmin(backend, faults, calls);
  const handlers = backend as unknown as Record<string, Handler>;

  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [rpc, meta] of Object.entries(RPCS)) {
    implementation[rpc] = ((call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      const req = call.request;
      const target = meta.target(req);
      const log = (rec: Omit<GcpCallRecord, "seq" | "time" | "operation" | "target">) => {
        const full: Omit<GcpCallRecord, "seq"> = { operation: rpc, ...rec, time: backend.now().toISOString() };
        if (target !== undefined) full.target = target;
        calls.append(full);
      };
      const answerError = (e: GcpError, committed: boolean, fault?: FaultKind) => {
        const rec: Omit<GcpCallRecord, "seq" | "time" | "operation" | "target"> = {
          status: HTTP_OF[e.code] ?? 500, error: grpc.status[e.code], grpcCode: e.code, committed,
        };
        if (fault) rec.fault = fault;
        log(rec);
        callback({ code: e.code, details: e.message });
      };
      const run = async (): Promise<void> => {
        const decision = faults.decide(rpc);
        if (decision.latencyMs > 0) await delay(decision.latencyMs);
        if (decision.kind && !decision.afterCommit) {
          // A timeout never answers: the client's deadline ends the call.
          if (decision.kind === "timeout") return log({ status: 0, fault: "timeout", committed: false });
          return answerError(faultError(decision.kind), false, decision.kind);
        }
        let res: Res;
        try {
          backend.authorize(target, meta.permission);
          const handler = handlers[rpc];
          if (!handler) throw new GcpError(grpc.status.UNIMPLEMENTED, `Method ${rpc} is not implemented by the emulator.`);
          res = await handler.call(backend, req);
        } catch (err) {
          // Unknown errors never leak their message (STYLE.md §12).
          return answerError(err instanceof GcpError ? err : new GcpError(grpc.status.INTERNAL, "Internal error encountered."), false);
        }
        if (decision.kind === "timeout") return log({ status: 0, fault: "timeout", committed: true });
        if (decision.kind) return answerError(faultError(decision.kind), true, decision.kind);
        log({ status: 200, grpcCode: 0, committed: true });
        callback(null, res);
      };
      void run().catch(() => callback({ code: grpc.status.INTERNAL, details: "Internal error encountered." }));
    }) as grpc.handleUnaryCall<Req, Res>;
  }

  const server = new grpc.Server();
  server.addService(kmsService(), implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  let adminServer;
  try {
    adminServer = await startAdminServer(gcpAdminRoutes(admin), opts.adminPort ?? 0, host);
  } catch (e) {
    server.forceShutdown();
    throw e;
  }
  const adminClose = adminServer.close;

  return {
    endpoint: `${host}:${port}`,
    port,
    adminUrl: adminServer.url,
    admin,
    close: async () => {
      server.forceShutdown();
      await adminClose();
      await backend.settled();
    },
  };
}
