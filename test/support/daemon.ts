/**
 * Test support: an MCKO home made by `mcko init`'s code, the real daemon started as a child process on a free
 * port, and grpc-js clients holding the home's certificates. Each integration file owns its daemon.
 */
import * as grpc from "@grpc/grpc-js";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { AuditServiceClient } from "../../protos/gen/mcko/v1/audit_service.js";
import { KeyServiceClient } from "../../protos/gen/mcko/v1/key_service.js";
import { VaultServiceClient } from "../../protos/gen/mcko/v1/vault_service.js";
import { Status } from "../../protos/gen/google/rpc/status.js";
import { BadRequest, ErrorInfo } from "../../protos/gen/google/rpc/error_details.js";
import { initHome } from "../../daemon/src/cli/init.js";
import { issueClientCert, type Grant } from "../../daemon/src/pki/certificates.js";
import { Secret } from "../../daemon/src/util/secret.js";
import { createSoftHsmToken, type SoftHsmToken } from "./softhsm.js";

export const REPO = resolve(fileURLToPath(import.meta.url), "../../..");
export const MCKO_BIN = join(REPO, "daemon/bin/mcko");

export interface Home {
  readonly dir: string;
  readonly configFile: string;
  readonly caPem: Buffer;
  readonly admin: { certPem: Buffer; keyPem: Buffer };
  readonly dataDir: string;
  readonly journalFile: string;
  /** Which HSM backend the home was made with. */
  readonly hsm: "software" | "pkcs11";
  /** The SoftHSM2 token of a pkcs11 home (its SOFTHSM2_CONF is in the home's config as hsm.moduleEnv). */
  readonly token?: SoftHsmToken;
  cleanup(): void;
}

/**
 * The backend `makeHome` uses when the caller names none: MCKO_TEST_HSM=pkcs11 runs the daemon suite on a fresh
 * SoftHSM2 token per home (test/integration/daemon-pkcs11.test.ts does that for every daemon test file).
 */
export const TEST_HSM: "software" | "pkcs11" = process.env.MCKO_TEST_HSM === "pkcs11" ? "pkcs11" : "software";

/**
 * A fresh SoftHSM2 token and the `initHome` options for it: PIN in a 0600 file next to the token, SOFTHSM2_CONF
 * in hsm.moduleEnv, so the daemon needs nothing from the environment.
 */
export async function softHsmInit(): Promise<{ token: SoftHsmToken; hsm: Parameters<typeof initHome>[0]["hsm"] }> {
  const token = await createSoftHsmToken();
  const pinFile = join(token.dir, "pin");
  writeFileSync(pinFile, token.pin, { mode: 0o600 });
  return {
    token,
    hsm: {
      backend: "pkcs11",
      modulePath: token.modulePath,
      tokenLabel: token.tokenLabel,
      masterKeyLabel: "mcko-master",
      pinFile,
      pin: Secret.copyOf(Buffer.from(token.pin)),
      adopt: false,
      moduleEnv: { SOFTHSM2_CONF: token.conf },
    },
  };
}

/**
 * Initialises a home in a temp folder. The backend: `hsm` when given ("pkcs11" = a fresh SoftHSM2 token), else
 * TEST_HSM. Extra config keys are merged in.
 */
export async function makeHome(extraConfig: Record<string, unknown> = {}, backend?: Parameters<typeof initHome>[0]["hsm"] | "software" | "pkcs11"): Promise<Home> {
  let hsm = backend === "software" ? ({ backend: "software" } as const) : backend === "pkcs11" ? undefined : backend;
  const dir = mkdtempSync(join(tmpdir(), "mcko-home-"));
  const home = join(dir, "home");
  let token: SoftHsmToken | undefined;
  if (backend === "pkcs11" || (backend === undefined && TEST_HSM === "pkcs11")) ({ token, hsm } = await softHsmInit());
  const r = await initHome({ dir: home, listen: "127.0.0.1:0", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], hsm: hsm ?? { backend: "software" }, validityDays: 30 });
  if (token && hsm?.backend === "pkcs11") hsm.pin.dispose();
  const config = JSON.parse(readFileSync(r.configFile, "utf8")) as Record<string, unknown>;
  writeFileSync(r.configFile, JSON.stringify({ ...config, schedulerIntervalMs: 100, shutdownGraceMs: 5000, ...extraConfig }, null, 2));
  return {
    dir: home,
    configFile: r.configFile,
    caPem: readFileSync(join(home, "tls/ca.pem")),
    admin: { certPem: readFileSync(join(home, "admin.pem")), keyPem: readFileSync(join(home, "admin.key")) },
    dataDir: join(home, "data"),
    journalFile: join(home, "data/vault/audit.jsonl"),
    hsm: hsm?.backend ?? "software",
    ...(token ? { token } : {}),
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
      if (token) rmSync(token.dir, { recursive: true, force: true });
    },
  };
}

export function issueClient(home: Home, commonName: string, grants: Grant[]): { certPem: Buffer; keyPem: Buffer } {
  const ca = { certPem: readFileSync(join(home.dir, "tls/ca.pem"), "utf8"), keyPem: readFileSync(join(home.dir, "tls/ca.key"), "utf8") };
  const c = issueClientCert(ca, { commonName, grants, validityDays: 1 });
  return { certPem: Buffer.from(c.certPem), keyPem: Buffer.from(c.keyPem) };
}

export interface DaemonProcess {
  readonly port: number;
  readonly address: string;
  readonly child: ChildProcess;
  /** Everything the daemon wrote to stderr (its JSON log), so far. */
  readonly logs: () => string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  readonly exited: Promise<number | null>;
}

/** Starts `mcko daemon --config F` and resolves once it logs that it is serving. Rejects with its log if it exits. */
export async function startDaemonProcess(home: Home, env: Record<string, string> = {}, port = 0, nodeArgs: string[] = []): Promise<DaemonProcess> {
  const args = ["daemon", "--config", home.configFile];
  const childEnv = { ...process.env, ...env, ...(port ? { MCKO_LISTEN: `127.0.0.1:${port}` } : {}) };
  // With node arguments (e.g. --cpu-prof for profiling) node is started directly instead of through bin/mcko.
  const child =
    nodeArgs.length === 0
      ? spawn(MCKO_BIN, args, { env: childEnv, stdio: ["ignore", "pipe", "pipe"] })
      : spawn(process.execPath, [...nodeArgs, "--import", join(REPO, "node_modules/tsx/dist/esm/index.mjs"), join(REPO, "daemon/src/cli/main.ts"), ...args], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  const bound = await new Promise<number>((res, rej) => {
    createInterface({ input: child.stderr! }).on("line", (line) => (log += line + "\n"));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      log += line + "\n";
      const m = /^mckod serving on .*:(\d+)$/.exec(line);
      if (m) res(Number(m[1]));
    });
    void exited.then((code) => rej(new Error(`daemon exited with ${code} before serving:\n${log}`)));
  });
  return {
    port: bound,
    address: `localhost:${bound}`,
    child,
    logs: () => log,
    exited,
    stop: async () => {
      child.kill("SIGTERM");
      return exited;
    },
    kill: async () => {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

export interface Clients {
  readonly vaults: VaultServiceClient;
  readonly keys: KeyServiceClient;
  readonly audit: AuditServiceClient;
  close(): void;
}

const CLIENT_OPTIONS = { "grpc.service_config_disable_resolution": 1, "grpc.max_send_message_length": 64 * 1024 * 1024 };

export function clientsFor(address: string, credentials: grpc.ChannelCredentials): Clients {
  const vaults = new VaultServiceClient(address, credentials, CLIENT_OPTIONS);
  const keys = new KeyServiceClient(address, credentials, CLIENT_OPTIONS);
  const audit = new AuditServiceClient(address, credentials, CLIENT_OPTIONS);
  return { vaults, keys, audit, close: () => [vaults, keys, audit].forEach((c) => c.close()) };
}

export function mtls(home: Home, identity = home.admin): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(home.caPem, identity.keyPem, identity.certPem);
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall;

/** Promisified unary call with a 30 s deadline. */
export function rpc<Req, Res>(client: grpc.Client, fn: Unary<Req, Res>, req: Req, timeoutMs = 30_000): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))));
}

export interface RpcFailure {
  readonly code: grpc.status;
  readonly message: string;
  readonly reason: string | undefined;
  readonly metadata: Record<string, string>;
  readonly fieldViolations: string[];
}

/** Runs the call expecting it to fail; decodes the google.rpc details. Throws if it succeeded. */
export async function rpcError<Req, Res>(client: grpc.Client, fn: Unary<Req, Res>, req: Req): Promise<RpcFailure> {
  try {
    await rpc(client, fn, req);
  } catch (e) {
    return decodeFailure(e as grpc.ServiceError);
  }
  throw new Error("expected the call to fail, but it succeeded");
}

export function decodeFailure(e: grpc.ServiceError): RpcFailure {
  let reason: string | undefined;
  let metadata: Record<string, string> = {};
  let fieldViolations: string[] = [];
  const raw = e.metadata?.get("grpc-status-details-bin")[0];
  if (raw instanceof Buffer) {
    for (const d of Status.decode(raw).details) {
      if (d.typeUrl.endsWith("/google.rpc.ErrorInfo")) {
        const info = ErrorInfo.decode(d.value);
        reason = info.reason;
        metadata = info.metadata;
      }
      if (d.typeUrl.endsWith("/google.rpc.BadRequest")) fieldViolations = BadRequest.decode(d.value).fieldViolations.map((v) => v.field);
    }
  }
  return { code: e.code, message: e.details, reason, metadata, fieldViolations };
}

/** grpc.health.v1 Check over the given credentials; resolves with the status name. */
export async function healthCheck(address: string, credentials: grpc.ChannelCredentials, service: string): Promise<string> {
  const { createRequire } = await import("node:module");
  const protoLoader = await import("@grpc/proto-loader");
  const require = createRequire(import.meta.url);
  const protoPath = join(require.resolve("grpc-health-check/package.json"), "../proto/health/v1/health.proto");
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { keepCase: true, enums: String })) as unknown as {
    grpc: { health: { v1: { Health: new (addr: string, creds: grpc.ChannelCredentials, opts: object) => grpc.Client & { check: (req: { service: string }, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void) => void } } } };
  };
  const client = new pkg.grpc.health.v1.Health(address, credentials, CLIENT_OPTIONS);
  try {
    return await new Promise<string>((res, rej) => client.check({ service }, (e, r) => (e ? rej(e) : res(String(r?.status)))));
  } finally {
    client.close();
  }
}

/** Server reflection v1 `list_services`; resolves with the service names. */
export async function reflectionServices(address: string, credentials: grpc.ChannelCredentials): Promise<string[]> {
  const { createRequire } = await import("node:module");
  const protoLoader = await import("@grpc/proto-loader");
  const require = createRequire(import.meta.url);
  const protoPath = join(require.resolve("@grpc/reflection/package.json"), "../build/proto/grpc/reflection/v1/reflection.proto");
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { keepCase: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (addr: string, creds: grpc.ChannelCredentials, opts: object) => grpc.Client & { ServerReflectionInfo: () => grpc.ClientDuplexStream<object, { list_services_response?: { service: Array<{ name: string }> } }> } } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, credentials, CLIENT_OPTIONS);
  try {
    return await new Promise<string[]>((res, rej) => {
      const stream = client.ServerReflectionInfo();
      stream.on("data", (m) => {
        res((m.list_services_response?.service ?? []).map((s: { name: string }) => s.name));
        stream.end();
      });
      stream.on("error", rej);
      stream.write({ list_services: "" });
    });
  } finally {
    client.close();
  }
}
