// The plugin process: handshake checks, a grpc-js server with tfplugin6.Provider, plugin.GRPCController,
// plugin.GRPCStdio and grpc.health.v1 ("plugin" = SERVING), mutual TLS against Terraform's client certificate, and
// the handshake line. stdout carries that one line and nothing else, ever.
import * as grpc from "@grpc/grpc-js";
import { GRPCControllerService, type GRPCControllerServer } from "../../../protos/gen/plugin/grpc_controller.js";
import { GRPCStdioService, type GRPCStdioServer } from "../../../protos/gen/plugin/grpc_stdio.js";
import { ProviderService } from "../../../protos/gen/tfplugin6/tfplugin6.js";
import { makeServerCertificate } from "./certificate.js";
import { checkPluginEnv, handshakeLine, type PluginEnv } from "./handshake.js";
import { addHealthService } from "./health.js";
import { ProviderServer } from "./provider-server.js";
import type { ProviderDefinition } from "./resource.js";

const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

export interface ServeOptions {
  /** The plugin variables of the environment, read by the entry point (config.ts pluginEnvFromProcess). */
  readonly env: PluginEnv;
  /** Where the handshake line goes (default process.stdout). */
  readonly writeStdout?: (s: string) => void;
  readonly writeStderr?: (s: string) => void;
  /** Called to end the process (default process.exit). */
  readonly exit?: (code: number) => void;
  /**
   * Debug mode (TFPLUGIN.md §1.9): started by hand, no magic cookie, no TLS; prints the TF_REATTACH_PROVIDERS value
   * for `source` (e.g. registry.terraform.io/mcko/mcko) and exits on Ctrl-C. Terraform then neither starts nor stops it.
   */
  readonly debug?: { readonly source: string };
}

export interface RunningPlugin {
  readonly address: string;
  readonly server: grpc.Server;
  readonly provider: ProviderServer<unknown>;
}

/**
 * Runs `provider` as a Terraform plugin. Returns once the handshake line is printed; the process then lives until
 * GRPCController.Shutdown (or being killed). On a failed handshake check it prints why to stderr and exits 1.
 */
export async function serve<Client>(definition: ProviderDefinition<Client>, opts: ServeOptions): Promise<RunningPlugin | undefined> {
  const writeStdout = opts.writeStdout ?? ((s: string) => void process.stdout.write(s));
  const writeStderr = opts.writeStderr ?? ((s: string) => void process.stderr.write(s));
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const env = opts.env;

  const debug = opts.debug;
  const check = debug ? ({ ok: true } as const) : checkPluginEnv(env);
  if (!check.ok) {
    writeStderr(check.message);
    exit(1);
    return undefined;
  }
  if (!debug) keepStdoutClean(writeStderr);
  // Ctrl-C reaches the provider too; Terraform answers it with StopProvider and Shutdown, so ignore it (go-plugin
  // does). In debug mode Ctrl-C is the way to stop it.
  process.on("SIGINT", debug ? () => exit(0) : () => {});

  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    // Channelz (grpc-js' introspection service, which nothing here serves) would count every call: ~7% of each call's CPU.
    "grpc.enable_channelz": 0,
  });
  const provider = new ProviderServer(definition);
  server.addService(ProviderService, provider.toGrpcHandlers());

  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    // Let the Shutdown reply go out, then stop; never keep Terraform waiting its 2 s before SIGKILL.
    const force = setTimeout(() => {
      server.forceShutdown();
      exit(0);
    }, 250);
    server.tryShutdown(() => {
      clearTimeout(force);
      exit(0);
    });
  };
  const controller: GRPCControllerServer = {
    shutdown: (_call, cb) => {
      cb(null, {});
      setImmediate(shutdown);
    },
  };
  server.addService(GRPCControllerService, controller);
  const stdio: GRPCStdioServer = {
    // Nothing is mirrored: logs go to stderr, which go-plugin already reads. Ending the stream at once is allowed.
    streamStdio: (call) => call.end(),
  };
  server.addService(GRPCStdioService, stdio);
  addHealthService(server, ["", "plugin"]);

  let creds: grpc.ServerCredentials;
  let certDer: Buffer | undefined;
  if (env.clientCertPem && !debug) {
    const cert = makeServerCertificate();
    certDer = cert.certDer;
    // Terraform's client certificate is a self-signed CA certificate: it is its own trust root. Require it.
    creds = grpc.ServerCredentials.createSsl(
      Buffer.from(env.clientCertPem),
      [{ private_key: Buffer.from(cert.keyPem), cert_chain: Buffer.from(cert.certPem) }],
      true,
    );
  } else {
    creds = grpc.ServerCredentials.createInsecure();
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  const address = `127.0.0.1:${port}`;
  if (debug) {
    const reattach = {
      [debug.source]: { Protocol: "grpc", ProtocolVersion: 6, Pid: process.pid, Test: true, Addr: { Network: "tcp", String: address } },
    };
    writeStdout(
      `Provider started in debug mode. To attach Terraform, run in another shell:\n\n` +
        `  export TF_REATTACH_PROVIDERS='${JSON.stringify(reattach)}'\n\nStop it with Ctrl-C.\n`,
    );
    return { address, server, provider: provider as ProviderServer<unknown> };
  }
  writeStdout(handshakeLine("tcp", address, certDer));

  // If Terraform dies without a Shutdown (SIGKILL), do not linger as an orphan.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) shutdown();
  }, 1000).unref();

  return { address, server, provider: provider as ProviderServer<unknown> };
}

/** Anything printed with console.log/info/debug after start goes to stderr: stdout belongs to the handshake. */
function keepStdoutClean(writeStderr: (s: string) => void): void {
  const toStderr = (...args: unknown[]): void => writeStderr(args.map((a) => (typeof a === "string" ? a : String(a))).join(" ") + "\n");
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}
