// Starts a provider process the way Terraform does (magic cookie, PLUGIN_PROTOCOL_VERSIONS, PLUGIN_CLIENT_CERT from a
// Terraform-shaped client certificate), parses the handshake line, and connects with grpc-js presenting that client
// certificate and pinning the server certificate from the handshake (ServerName "localhost", as go-plugin does).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { GRPCControllerClient } from "../../protos/gen/plugin/grpc_controller.js";
import { ProviderClient } from "../../protos/gen/tfplugin6/tfplugin6.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const MCKO_PROVIDER_BIN = join(REPO_ROOT, "provider/bin/terraform-provider-mcko");
export const TEST_PROVIDER_MAIN = join(REPO_ROOT, "test/support/tf-test-provider-main.ts");
export const TSX_LOADER = join(REPO_ROOT, "node_modules/tsx/dist/loader.mjs");
export const MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

export interface ClientCert {
  readonly certPem: string;
  readonly keyPem: string;
}

let cachedCert: ClientCert | undefined;

/**
 * A client certificate shaped like Terraform's (go-plugin mtls.go): self-signed ECDSA P-521 CA, CN=localhost,
 * O=HashiCorp, SAN DNS:localhost, EKU clientAuth+serverAuth. Made by the openssl CLI, independent of the provider.
 */
export function terraformClientCert(): ClientCert {
  if (cachedCert) return cachedCert;
  const dir = mkdtempSync(join(tmpdir(), "tf-client-cert-"));
  try {
    const key = join(dir, "key.pem");
    const crt = join(dir, "cert.pem");
    execFileSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521", "-nodes", "-keyout", key, "-out", crt,
        "-days", "2", "-subj", "/CN=localhost/O=HashiCorp",
        "-addext", "subjectAltName=DNS:localhost",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement,keyCertSign",
        "-addext", "extendedKeyUsage=clientAuth,serverAuth",
      ],
      { stdio: "ignore" },
    );
    cachedCert = { certPem: readFileSync(crt, "utf8"), keyPem: readFileSync(key, "utf8") };
    return cachedCert;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Handshake {
  readonly core: string;
  readonly app: string;
  readonly network: string;
  readonly address: string;
  readonly protocol: string;
  /** The raw base64 field (must be unpadded). */
  readonly certBase64: string;
  readonly certPem: string;
}

export function parseHandshake(line: string): Handshake {
  const f = line.trim().split("|");
  if (f.length < 6) throw new Error(`not a handshake line: ${JSON.stringify(line)}`);
  const [core, app, network, address, protocol, certBase64] = f as [string, string, string, string, string, string];
  const b64 = certBase64 + "=".repeat((4 - (certBase64.length % 4)) % 4);
  const certPem = `-----BEGIN CERTIFICATE-----\n${b64.replace(/(.{64})/g, "$1\n")}\n-----END CERTIFICATE-----\n`;
  return { core, app, network, address, protocol, certBase64, certPem };
}

export interface LaunchOptions {
  /** Executable to run directly (like Terraform), or a .ts entry run by node with tsx. */
  readonly command: string;
  readonly args?: readonly string[];
  /** Extra environment; `null` removes a variable. */
  readonly env?: Readonly<Record<string, string | null>>;
  readonly cwd?: string;
}

export interface ProcessOutput {
  stdout: string;
  stderr: string;
}

export interface LaunchedPlugin {
  readonly proc: ChildProcess;
  readonly handshakeLine: string;
  readonly handshake: Handshake;
  readonly output: ProcessOutput;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  readonly exited: Promise<number | string>;
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions: grpc.ChannelOptions;
  readonly provider: ProviderClient;
  readonly controller: GRPCControllerClient;
  /** Calls a unary method of a ts-proto grpc-js client as a promise. */
  call<Req, Resp>(client: grpc.Client, method: string, req: Req): Promise<Resp>;
  /** Closes the clients and kills the process if it is still running. */
  close(): Promise<void>;
}

function childEnv(extra: LaunchOptions["env"]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // ava sets these for its workers; a provider process should not inherit test-runner state.
  delete env["NODE_OPTIONS"];
  delete env["TF_CLI_CONFIG_FILE"];
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === null) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Spawns without the handshake expectations: for the failure cases (no cookie, wrong protocol). */
export function runPluginToExit(opts: LaunchOptions): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const { cmd, args } = commandLine(opts);
  const proc = spawn(cmd, args, { env: childEnv(opts.env), cwd: opts.cwd ?? REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((res) => proc.on("close", (code, signal) => res({ code: code ?? signal ?? "unknown", stdout, stderr })));
}

function commandLine(opts: LaunchOptions): { cmd: string; args: string[] } {
  if (opts.command.endsWith(".ts")) return { cmd: process.execPath, args: ["--import", TSX_LOADER, opts.command, ...(opts.args ?? [])] };
  return { cmd: opts.command, args: [...(opts.args ?? [])] };
}

/** Spawns the provider with Terraform's environment and returns once the handshake line has arrived. */
export async function launchPlugin(opts: LaunchOptions): Promise<LaunchedPlugin> {
  const cert = terraformClientCert();
  const env = childEnv({
    TF_PLUGIN_MAGIC_COOKIE: MAGIC_COOKIE,
    PLUGIN_PROTOCOL_VERSIONS: "5,6",
    PLUGIN_MIN_PORT: "10000",
    PLUGIN_MAX_PORT: "25000",
    PLUGIN_CLIENT_CERT: cert.certPem,
    ...opts.env,
  });
  const { cmd, args } = commandLine(opts);
  const proc = spawn(cmd, args, { env, cwd: opts.cwd ?? REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const output: ProcessOutput = { stdout: "", stderr: "" };
  proc.stderr.on("data", (d: Buffer) => (output.stderr += d.toString()));
  const exited = new Promise<number | string>((res) => proc.on("close", (code, signal) => res(code ?? signal ?? "unknown")));
  const handshakeLine = await new Promise<string>((res, rej) => {
    proc.stdout.on("data", (d: Buffer) => {
      output.stdout += d.toString();
      const nl = output.stdout.indexOf("\n");
      if (nl >= 0) res(output.stdout.slice(0, nl + 1));
    });
    void exited.then((code) => rej(new Error(`provider exited (${code}) before the handshake; stderr:\n${output.stderr}`)));
  });
  const handshake = parseHandshake(handshakeLine);
  const credentials = grpc.credentials.createSsl(Buffer.from(handshake.certPem), Buffer.from(cert.keyPem), Buffer.from(cert.certPem));
  const channelOptions: grpc.ChannelOptions = {
    "grpc.ssl_target_name_override": "localhost",
    "grpc.default_authority": "localhost",
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
  };
  const provider = new ProviderClient(handshake.address, credentials, channelOptions);
  const controller = new GRPCControllerClient(handshake.address, credentials, channelOptions);
  const call = <Req, Resp>(client: grpc.Client, method: string, req: Req): Promise<Resp> =>
    new Promise((res, rej) => {
      const fn = (client as unknown as Record<string, (r: Req, cb: (e: grpc.ServiceError | null, v: Resp) => void) => void>)[method];
      if (!fn) return rej(new Error(`no method ${method}`));
      fn.call(client, req, (e, v) => (e ? rej(e) : res(v)));
    });
  return {
    proc,
    handshakeLine,
    handshake,
    output,
    exited,
    credentials,
    channelOptions,
    provider,
    controller,
    call,
    close: async () => {
      provider.close();
      controller.close();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
    },
  };
}

/** Milliseconds from spawn to the handshake line (the provider's start-up cost Terraform pays per process). */
export async function measureStartToHandshake(opts: LaunchOptions): Promise<number> {
  const t0 = performance.now();
  const p = await launchPlugin(opts);
  const ms = performance.now() - t0;
  await p.close();
  return ms;
}
