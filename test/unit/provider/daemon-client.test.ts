// The provider's daemon client against a real mTLS grpc-js server (a stand-in for the daemon, not the daemon), and
// describeDaemonError on real grpc-js errors carrying google.rpc details in the grpc-status-details-bin trailer.
import * as grpc from "@grpc/grpc-js";
import test from "ava";
import { BadRequest, ErrorInfo } from "../../../protos/gen/google/rpc/error_details.js";
import { Status } from "../../../protos/gen/google/rpc/status.js";
import { type VaultServiceServer, VaultServiceService } from "../../../protos/gen/mcko/v1/vault_service.js";
import { createDaemonClient, type DaemonClient } from "../../../provider/src/client/daemon-client.js";
import { describeDaemonError } from "../../../provider/src/client/errors.js";
import { addHealthService } from "../../../provider/src/plugin/health.js";
import { makeTestPki, type TestPki } from "../../support/tf-certs.js";

let pki: TestPki;
let server: grpc.Server;
let address: string;

const detailsTrailer = (st: Status): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set("grpc-status-details-bin", Buffer.from(Status.encode(st).finish()));
  return md;
};
const any = (type: string, value: Uint8Array) => ({ typeUrl: `type.googleapis.com/${type}`, value: Buffer.from(value) });

test.before(async () => {
  pki = makeTestPki();
  server = new grpc.Server();
  addHealthService(server, [""]);
  const vaults: Partial<VaultServiceServer> = {
    getVault: (call, cb) => {
      const name = call.request.name;
      if (name === "vaults/hang") return; // never answers: only a cancel ends the call
      if (name === "vaults/bad") {
        cb({
          code: grpc.status.INVALID_ARGUMENT,
          details: "invalid vault",
          metadata: detailsTrailer({
            code: grpc.status.INVALID_ARGUMENT,
            message: "the request has 1 invalid field",
            details: [
              any("google.rpc.ErrorInfo", ErrorInfo.encode({ reason: "INVALID_ARGUMENT", domain: "mcko.v1", metadata: {} }).finish()),
              any("google.rpc.BadRequest", BadRequest.encode({ fieldViolations: [{ field: "vault.display_name", description: "at most 256 characters", reason: "", localizedMessage: undefined }] }).finish()),
            ],
          }),
        });
      } else {
        cb({
          code: grpc.status.FAILED_PRECONDITION,
          details: "not allowed",
          metadata: detailsTrailer({
            code: grpc.status.FAILED_PRECONDITION,
            message: "ACTIVE -> PRE_ACTIVATION is not allowed",
            details: [any("google.rpc.ErrorInfo", ErrorInfo.encode({ reason: "KEY_STATE_TRANSITION_NOT_ALLOWED", domain: "mcko.v1", metadata: { from: "ACTIVE" } }).finish())],
          }),
        });
      }
    },
  };
  server.addService(VaultServiceService, vaults as VaultServiceServer);
  const creds = grpc.ServerCredentials.createSsl(Buffer.from(pki.caPem), [{ cert_chain: Buffer.from(pki.serverCertPem), private_key: Buffer.from(pki.serverKeyPem) }], true);
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", creds, (e, p) => (e ? rej(e) : res(p))));
  address = `localhost:${port}`;
});

test.after.always(() => {
  server?.forceShutdown();
  pki?.cleanup();
});

const client = (cert = pki.clientCertPem, key = pki.clientKeyPem): DaemonClient =>
  createDaemonClient({ address, caPem: Buffer.from(pki.caPem), certPem: Buffer.from(cert), keyPem: Buffer.from(key), requestTimeoutMs: 20_000 });

const getVault = (c: DaemonClient, name: string): Promise<unknown> => c.unary(c.vaults.getVault.bind(c.vaults), { name });

test("ping over mutual TLS (hostname target, no DNS TXT lookup option set)", async (t) => {
  const c = client();
  await t.notThrowsAsync(c.ping());
  c.close();
});

test("a client certificate from a foreign CA cannot reach the daemon: diagnostic names the address", async (t) => {
  const c = client(pki.foreignClientCertPem, pki.foreignClientKeyPem);
  const err = await t.throwsAsync(c.ping());
  c.close();
  const d = describeDaemonError(err, address);
  t.is(d.length, 1);
  t.true(d[0]?.summary.startsWith(`cannot reach the MCKO daemon at ${address}`), d[0]?.summary);
});

test("ErrorInfo reason becomes the summary; status message the detail", async (t) => {
  const c = client();
  const err = await t.throwsAsync(getVault(c, "vaults/x"));
  c.close();
  const d = describeDaemonError(err, address);
  t.is(d.length, 1);
  t.is(d[0]?.summary, "Key state transition not allowed (KEY_STATE_TRANSITION_NOT_ALLOWED)");
  t.is(d[0]?.detail, "ACTIVE -> PRE_ACTIVATION is not allowed");
  t.is(d[0]?.path, undefined);
});

test("BadRequest field violations become attribute-path diagnostics", async (t) => {
  const c = client();
  const err = await t.throwsAsync(getVault(c, "vaults/bad"));
  c.close();
  const d = describeDaemonError(err, address);
  t.is(d.length, 1);
  t.deepEqual(d[0]?.path, [{ attribute: "display_name" }]);
  t.is(d[0]?.detail, "at most 256 characters");
  const mapped = describeDaemonError(err, address, (f) => (f === "vault.display_name" ? [{ attribute: "title" }] : undefined));
  t.deepEqual(mapped[0]?.path, [{ attribute: "title" }]);
});

test("a plain Error (no gRPC status) still names the address", (t) => {
  const d = describeDaemonError(new Error("socket hang up"), "10.0.0.1:7443");
  t.deepEqual(d, [{ severity: "error", summary: "cannot reach the MCKO daemon at 10.0.0.1:7443", detail: "socket hang up" }]);
});

test("unary() rejects at once when the signal is already aborted, without calling the daemon", async (t) => {
  const c = client();
  const ac = new AbortController();
  ac.abort(new Error("stopped"));
  await t.throwsAsync(c.unary(c.vaults.getVault.bind(c.vaults), { name: "vaults/x" }, ac.signal), { message: "stopped" });
  c.close();
});

test("unary() cancels an in-flight call when the signal aborts (StopProvider)", async (t) => {
  const c = client();
  const ac = new AbortController();
  const pending = c.unary(c.vaults.getVault.bind(c.vaults), { name: "vaults/hang" }, ac.signal);
  await c.ping(); // the channel is up, so the hanging call has been sent
  ac.abort(new Error("stop"));
  const err = await t.throwsAsync(pending);
  t.is((err as grpc.ServiceError).code, grpc.status.CANCELLED);
  c.close();
});
