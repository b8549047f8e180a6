// The real terraform-provider-mcko executable, started the way Terraform starts it (through a symlink, from another
// working directory, with Terraform's environment), spoken to over its real mutual-TLS gRPC socket. Values are
// encoded with the independent test encoder.
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import test from "ava";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { GRPCStdioClient } from "../../protos/gen/plugin/grpc_stdio.js";
import type * as pb from "../../protos/gen/tfplugin6/tfplugin6.js";
import { type LaunchedPlugin, launchPlugin, MCKO_PROVIDER_BIN, runPluginToExit, terraformClientCert } from "../support/tf-plugin-launcher.js";
import { map, pack } from "../support/tf-msgpack.js";

const dv = (v: Parameters<typeof pack>[0]): pb.DynamicValue => ({ msgpack: pack(v), json: Buffer.alloc(0) });
const providerConfig = (o: Partial<Record<"address" | "ca_cert" | "client_cert" | "client_key" | "request_timeout", string>>) =>
  dv(map({ address: null, ca_cert: null, client_cert: null, client_key: null, request_timeout: null, ...o }));
const NO_MCKO_ENV = { MCKO_ADDR: null, MCKO_CA_CERT: null, MCKO_CLIENT_CERT: null, MCKO_CLIENT_KEY: null };
const hasStack = (s: string): boolean => /\n\s+at /.test(s) || /\.ts:\d+/.test(s);

let dir: string;
let plugin: LaunchedPlugin;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), "mcko-plugin-"));
  // Terraform runs the file from the package directory, which `terraform init` often symlinks.
  const link = join(dir, "terraform-provider-mcko_v0.1.0");
  symlinkSync(MCKO_PROVIDER_BIN, link);
  plugin = await launchPlugin({ command: link, cwd: dir, env: NO_MCKO_ENV });
});

test.after.always(async () => {
  await plugin?.close();
  rmSync(dir, { recursive: true, force: true });
});

test.serial("handshake line: core 1, protocol 6, tcp on loopback, grpc, unpadded DER with SAN DNS:localhost", (t) => {
  const h = plugin.handshake;
  t.regex(plugin.handshakeLine, /^1\|6\|tcp\|127\.0\.0\.1:\d+\|grpc\|[A-Za-z0-9+/]+\n$/);
  t.false(h.certBase64.endsWith("="), "no base64 padding (Go decodes with RawStdEncoding)");
  const cert = new X509Certificate(h.certPem);
  t.true(cert.subjectAltName?.includes("DNS:localhost"));
  t.true(cert.checkHost("localhost") === "localhost");
  t.true(new Date(cert.validFrom).getTime() < Date.now(), "valid from the past");
});

test.serial("GetProviderSchema: the provider block with its attributes; client_key sensitive", async (t) => {
  const resp = await plugin.call<pb.GetProviderSchema_Request, pb.GetProviderSchema_Response>(plugin.provider, "getProviderSchema", {});
  t.deepEqual(resp.diagnostics, []);
  const attrs = resp.provider?.block?.attributes ?? [];
  t.deepEqual(attrs.map((a) => a.name).sort(), ["address", "ca_cert", "client_cert", "client_key", "request_timeout"]);
  t.true(attrs.find((a) => a.name === "client_key")?.sensitive);
  t.is(attrs.find((a) => a.name === "address")?.type.toString(), '"string"');
  t.true(attrs.every((a) => a.optional && a.description.length > 0));
});

test.serial("ValidateProviderConfig: a bad request_timeout is an error on that attribute", async (t) => {
  const ok = await plugin.call<pb.ValidateProviderConfig_Request, pb.ValidateProviderConfig_Response>(plugin.provider, "validateProviderConfig", {
    config: providerConfig({ request_timeout: "90s", address: "127.0.0.1:7443" }),
  });
  t.deepEqual(ok.diagnostics, []);
  const bad = await plugin.call<pb.ValidateProviderConfig_Request, pb.ValidateProviderConfig_Response>(plugin.provider, "validateProviderConfig", {
    config: providerConfig({ request_timeout: "soon" }),
  });
  t.is(bad.diagnostics.length, 1);
  t.is(bad.diagnostics[0]?.severity, 1);
  t.deepEqual(bad.diagnostics[0]?.attribute?.steps, [{ selector: { $case: "attributeName", value: "request_timeout" } }]);
});

test.serial("ConfigureProvider without an address (and no MCKO_ADDR): error on `address`", async (t) => {
  const c = terraformClientCert();
  const resp = await plugin.call<pb.ConfigureProvider_Request, pb.ConfigureProvider_Response>(plugin.provider, "configureProvider", {
    terraformVersion: "1.11.4",
    config: providerConfig({ ca_cert: c.certPem, client_cert: c.certPem, client_key: c.keyPem }),
  });
  const d = resp.diagnostics.find((x) => x.attribute?.steps[0]?.selector?.value === "address");
  t.truthy(d, JSON.stringify(resp.diagnostics));
  t.regex(d?.detail ?? "", /MCKO_ADDR/);
});

test.serial("ConfigureProvider with the daemon down: one diagnostic naming the address, no stack trace", async (t) => {
  const port = await new Promise<number>((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
  const c = terraformClientCert();
  const resp = await plugin.call<pb.ConfigureProvider_Request, pb.ConfigureProvider_Response>(plugin.provider, "configureProvider", {
    terraformVersion: "1.11.4",
    config: providerConfig({ address: `127.0.0.1:${port}`, ca_cert: c.certPem, client_cert: c.certPem, client_key: c.keyPem, request_timeout: "20s" }),
  });
  t.is(resp.diagnostics.length, 1, JSON.stringify(resp.diagnostics));
  const d = resp.diagnostics[0] as pb.Diagnostic;
  t.is(d.severity, 1);
  t.true(d.summary.includes(`127.0.0.1:${port}`), d.summary);
  t.regex(d.summary, /cannot reach the MCKO daemon/);
  t.false(hasStack(d.summary + d.detail), d.detail);
});

test.serial("ConfigureProvider with an unreadable ca_cert file: error on `ca_cert` naming the file", async (t) => {
  const c = terraformClientCert();
  const resp = await plugin.call<pb.ConfigureProvider_Request, pb.ConfigureProvider_Response>(plugin.provider, "configureProvider", {
    terraformVersion: "1.11.4",
    config: providerConfig({ address: "127.0.0.1:1", ca_cert: "/nonexistent/ca.pem", client_cert: c.certPem, client_key: c.keyPem }),
  });
  t.is(resp.diagnostics.length, 1);
  t.deepEqual(resp.diagnostics[0]?.attribute?.steps, [{ selector: { $case: "attributeName", value: "ca_cert" } }]);
  t.regex(resp.diagnostics[0]?.detail ?? "", /\/nonexistent\/ca\.pem.*ENOENT/);
});

test.serial("health Check(\"plugin\") is SERVING", async (t) => {
  const def = protoLoader.loadSync(healthProtoPath, { keepCase: true, enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: new (a: string, c: grpc.ChannelCredentials, o: grpc.ChannelOptions) => grpc.Client } } };
  };
  const client = new pkg.grpc.health.v1.Health(plugin.handshake.address, plugin.credentials, plugin.channelOptions);
  const resp = await plugin.call<{ service: string }, { status: string }>(client, "Check", { service: "plugin" });
  client.close();
  t.is(resp.status, "SERVING");
});

test.serial("GRPCStdio.StreamStdio answers and ends", async (t) => {
  const client = new GRPCStdioClient(plugin.handshake.address, plugin.credentials, plugin.channelOptions);
  const chunks = await new Promise<number>((res, rej) => {
    let n = 0;
    const s = client.streamStdio({});
    s.on("data", () => n++);
    s.on("error", rej);
    s.on("end", () => res(n));
  });
  client.close();
  t.is(chunks, 0);
});

test.serial("a client without a client certificate is refused (mutual TLS)", async (t) => {
  const creds = grpc.credentials.createSsl(Buffer.from(plugin.handshake.certPem));
  const { ProviderClient } = await import("../../protos/gen/tfplugin6/tfplugin6.js");
  const client = new ProviderClient(plugin.handshake.address, creds, plugin.channelOptions);
  const err = await t.throwsAsync(plugin.call(client, "getProviderSchema", {}));
  client.close();
  t.is((err as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
});

test.serial("GRPCController.Shutdown: the process exits 0, and stdout held only the handshake line", async (t) => {
  await plugin.call(plugin.controller, "shutdown", {});
  t.is(await plugin.exited, 0);
  t.is(plugin.output.stdout, plugin.handshakeLine);
});

test("run by hand (no magic cookie): go-plugin's message on stderr, nothing on stdout, exit 1", async (t) => {
  const r = await runPluginToExit({ command: MCKO_PROVIDER_BIN, env: { TF_PLUGIN_MAGIC_COOKIE: null } });
  t.is(r.code, 1);
  t.is(r.stdout, "");
  t.regex(r.stderr, /^This binary is a plugin\. These are not meant to be executed directly\./);
});

test("a client that does not accept protocol 6: explained on stderr, exit 1", async (t) => {
  const r = await runPluginToExit({
    command: MCKO_PROVIDER_BIN,
    env: { TF_PLUGIN_MAGIC_COOKIE: "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2", PLUGIN_PROTOCOL_VERSIONS: "5" },
  });
  t.is(r.code, 1);
  t.is(r.stdout, "");
  t.regex(r.stderr, /protocol 6/);
});

test("--debug: serves without TLS, prints TF_REATTACH_PROVIDERS, stops on Ctrl-C", async (t) => {
  const env = { ...process.env };
  delete env["TF_PLUGIN_MAGIC_COOKIE"];
  delete env["NODE_OPTIONS"];
  const proc = spawn(MCKO_PROVIDER_BIN, ["--debug"], { env, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | string>((res) => proc.on("close", (code, signal) => res(code ?? signal ?? "?")));
  let out = "";
  await new Promise<void>((res, rej) => {
    proc.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Ctrl-C")) res();
    });
    void exited.then(() => rej(new Error(`exited early: ${out}`)));
  });
  const m = /TF_REATTACH_PROVIDERS='(.*)'/.exec(out);
  const reattach = JSON.parse(m?.[1] ?? "{}") as Record<string, { Protocol: string; ProtocolVersion: number; Pid: number; Test: boolean; Addr: { Network: string; String: string } }>;
  const entry = reattach["registry.terraform.io/mcko/mcko"];
  t.is(entry?.ProtocolVersion, 6);
  t.is(entry?.Pid, proc.pid);
  t.true(entry?.Test);
  const { ProviderClient } = await import("../../protos/gen/tfplugin6/tfplugin6.js");
  const client = new ProviderClient(entry?.Addr.String ?? "", grpc.credentials.createInsecure());
  const schema = await new Promise<pb.GetProviderSchema_Response>((res, rej) => client.getProviderSchema({}, (e, v) => (e ? rej(e) : res(v))));
  client.close();
  t.truthy(schema.provider?.block);
  proc.kill("SIGINT");
  t.is(await exited, 0);
});
