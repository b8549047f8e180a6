/**
 * The gRPC server: mutual TLS 1.3, the mcko.v1 services, grpc.health.v1 and server reflection.
 *
 * TLS asks every client for a certificate and Node verifies it against the CA, but does not drop the connection
 * when there is none: the call then reaches the interceptor below, which answers UNAUTHENTICATED (and audits it)
 * for everything except health checks. That gives callers the right status code and a message they can act on,
 * where a handshake failure would only say "failed to connect". Plaintext connections never get that far.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AuditServiceService } from "../../../protos/gen/mcko/v1/audit_service.js";
import { KeyServiceService } from "../../../protos/gen/mcko/v1/key_service.js";
import { VaultServiceService } from "../../../protos/gen/mcko/v1/vault_service.js";
import { KeystoreServiceService } from "../../../protos/gen/mcko/v1/keystore_service.js";
import { DistributionServiceService } from "../../../protos/gen/mcko/v1/distribution_service.js";
import type { KeystoreService } from "../core/keystores.js";
import type { DistributionService } from "../core/distributions.js";
import { keystoreServiceHandlers } from "./keystore-service.js";
import { distributionServiceHandlers } from "./distribution-service.js";
import { MasterKeyServiceService } from "../../../protos/gen/mcko/v1/master_key_service.js";
import type { MasterKeyRotationService } from "../core/master-key-rotation.js";
import { masterKeyServiceHandlers } from "./master-key-service.js";
import type { AuditLog } from "../core/audit/audit-log.js";
import type { KeyService } from "../core/keys.js";
import type { VaultService } from "../core/vaults.js";
import type { Logger } from "../log/logger.js";
import { auditServiceHandlers } from "./audit-service.js";
import { principalOf, rememberPrincipal } from "./auth.js";
import { keyServiceHandlers } from "./key-service.js";
import { ANONYMOUS, unauthenticated } from "./unary.js";
import { vaultServiceHandlers } from "./vault-service.js";
import { toGrpcError, codeName } from "./errors.js";
import type { CertificateProvider } from "@grpc/grpc-js/build/src/certificate-provider.js";

const here = dirname(fileURLToPath(import.meta.url));
const DESCRIPTORS = join(here, "../../../protos/gen/mcko.binpb");
export const MCKO_SERVICES = ["mcko.v1.VaultService", "mcko.v1.KeyService", "mcko.v1.AuditService", "mcko.v1.KeystoreService", "mcko.v1.DistributionService", "mcko.v1.MasterKeyService"] as const;

export interface ServerDeps {
  readonly log: Logger;
  readonly audit: AuditLog;
  readonly keys: KeyService;
  readonly vaults: VaultService;
  readonly keystores: KeystoreService;
  readonly distributions: DistributionService;
  readonly masterKeyRotation: MasterKeyRotationService;
  readonly isDraining: () => boolean;
  readonly tls: { readonly caPem: Buffer; readonly certPem: Buffer; readonly keyPem: Buffer };
  readonly maxRequestBytes: number;
}

export interface BuiltServer {
  readonly server: grpc.Server;
  readonly health: HealthImplementation;
  readonly credentials: grpc.ServerCredentials;
}

/**
 * A certificate provider that hands out fixed PEMs (read once at start). It reports asynchronously: grpc-js
 * registers its watcher only after adding the listener, so a synchronous report would be lost and every
 * connection dropped as "credentials not loaded".
 */
function staticProvider(ca: Buffer | undefined, identity: { certificate: Buffer; privateKey: Buffer } | undefined): CertificateProvider {
  return {
    addCaCertificateListener: (l) => void (ca && setImmediate(() => l({ caCertificate: ca }))),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: (l) => void (identity && setImmediate(() => l(identity))),
    removeIdentityCertificateListener: () => undefined,
  };
}

export function buildServer(deps: ServerDeps): BuiltServer {
  const authGate: grpc.ServerInterceptor = (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            if (method.path.startsWith("/grpc.health.v1.")) {
              mdNext(metadata);
              return;
            }
            const principal = principalOf(call);
            if (principal !== undefined) {
              // The handler receives this same metadata object: it finds the principal without re-parsing the
              // peer certificate.
              rememberPrincipal(metadata, principal);
              mdNext(metadata);
              return;
            }
            const mapped = toGrpcError(unauthenticated(), deps.log);
            const event = deps.audit.event({ principal: { subject: ANONYMOUS, grants: [] }, method: method.path }, method.path, null, {}, codeName(mapped.code), mapped.reason);
            // The denial is in the audit log before the caller hears of it.
            deps.audit
              .record([event])
              .catch((e: unknown) => deps.log.error({ err: String(e) }, "could not audit an unauthenticated call"))
              .finally(() => call.sendStatus({ code: mapped.code, details: mapped.message, metadata: mapped.error.metadata }));
          },
        });
      },
    });

  const server = new grpc.Server({
    interceptors: [authGate],
    "grpc.max_receive_message_length": deps.maxRequestBytes,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
    "grpc.keepalive_permit_without_calls": 1,
    // No channelz service is served, so its per-call bookkeeping (counters, timestamps, call trackers) is pure cost:
    // about a twelfth of the daemon's CPU per CreateKey with 16 concurrent callers (`npm run bench -- --only daemon`).
    "grpc.enable_channelz": 0,
  });
  const apiDeps = { audit: deps.audit, log: deps.log, isDraining: deps.isDraining, principalOf };
  server.addService(VaultServiceService, vaultServiceHandlers({ ...apiDeps, vaults: deps.vaults }));
  server.addService(KeyServiceService, keyServiceHandlers({ ...apiDeps, keys: deps.keys }));
  server.addService(AuditServiceService, auditServiceHandlers({ ...apiDeps, auditLog: deps.audit }));
  server.addService(KeystoreServiceService, keystoreServiceHandlers({ ...apiDeps, keystores: deps.keystores }));
  server.addService(DistributionServiceService, distributionServiceHandlers({ ...apiDeps, distributions: deps.distributions }));
  server.addService(MasterKeyServiceService, masterKeyServiceHandlers({ ...apiDeps, masterKeyRotation: deps.masterKeyRotation }));

  const statusMap: Record<string, "SERVING" | "NOT_SERVING"> = { "": "NOT_SERVING" };
  for (const s of MCKO_SERVICES) statusMap[s] = "NOT_SERVING";
  const health = new HealthImplementation(statusMap);
  health.addToServer(server);

  addLazyReflection(server, () => {
    const require = createRequire(import.meta.url);
    const healthProto = join(dirname(require.resolve("grpc-health-check/package.json")), "proto/health/v1/health.proto");
    return { ...protoLoader.loadFileDescriptorSetFromBuffer(readFileSync(DESCRIPTORS)), ...protoLoader.loadSync(healthProto) };
  });

  // One provider serves both the CA and the identity: grpc-js 1.14's factory hands its two provider arguments to
  // the constructor in swapped order, so passing the same object keeps this independent of that detail.
  const provider = staticProvider(deps.tls.caPem, { certificate: deps.tls.certPem, privateKey: deps.tls.keyPem });
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
  return { server, health, credentials };
}

/**
 * Server reflection, indexed on first use: building the index over every descriptor (google.api, descriptor.proto…)
 * costs most of a second, which every daemon start would otherwise pay. The services are registered up front
 * (grpc-js cannot add services to a started server) with handlers that build the real ones when first called.
 */
function addLazyReflection(server: grpc.Server, load: () => protoLoader.PackageDefinition): void {
  let real: Map<string, grpc.UntypedHandleCall> | undefined;
  const realHandler = (path: string): grpc.UntypedHandleCall => {
    if (!real) {
      const handlers = new Map<string, grpc.UntypedHandleCall>();
      const recorder = {
        addService: (def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) => {
          for (const [name, method] of Object.entries(def)) handlers.set(method.path, impl[name]!);
        },
      };
      new ReflectionService(load()).addToServer(recorder as unknown as grpc.Server);
      real = handlers;
    }
    return real.get(path)!;
  };
  const shell = {
    addService: (def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) => {
      const lazy: grpc.UntypedServiceImplementation = {};
      for (const [name, method] of Object.entries(def)) {
        if (impl[name]) lazy[name] = ((call: grpc.ServerDuplexStream<unknown, unknown>) => (realHandler(method.path) as (c: typeof call) => void)(call)) as grpc.UntypedHandleCall;
      }
      server.addService(def, lazy);
    },
  };
  new ReflectionService({}).addToServer(shell as unknown as grpc.Server);
}

export function setServing(health: HealthImplementation, serving: boolean): void {
  const status = serving ? "SERVING" : "NOT_SERVING";
  health.setStatus("", status);
  for (const s of MCKO_SERVICES) health.setStatus(s, status);
}

export function bind(server: grpc.Server, host: string, port: number, credentials: grpc.ServerCredentials): Promise<number> {
  const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) =>
    server.bindAsync(address, credentials, (err, boundPort) => {
      if (err) return reject(err);
      // The certificate provider reports on an earlier-queued immediate; once this one runs, the TLS context is
      // loaded and the first connection will not be dropped.
      setImmediate(() => resolve(boundPort));
    }),
  );
}
