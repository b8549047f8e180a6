/**
 * Authentication and authorization: plaintext, certificate-less and foreign-CA clients are refused; roles are
 * enforced per vault; every denial is an audit event.
 */
import anyTest, { type TestFn } from "ava";
import * as grpc from "@grpc/grpc-js";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { createCa, issueClientCert } from "../../daemon/src/pki/certificates.js";
import { clientsFor, healthCheck, issueClient, reflectionServices, makeHome, mtls, rpc, rpcError, startDaemonProcess, type Clients, type DaemonProcess, type Home } from "../support/daemon.js";

const test = anyTest as TestFn<{ home: Home; daemon: DaemonProcess; admin: Clients }>;

test.before(async (t) => {
  const home = await makeHome();
  const daemon = await startDaemonProcess(home);
  const admin = clientsFor(daemon.address, mtls(home));
  for (const v of ["alpha", "beta"]) {
    await rpc(admin.vaults, admin.vaults.createVault, { vaultId: v, vault: { name: "", displayName: v, description: "", etag: "", keyCount: 0n }, requestId: "" });
  }
  t.context = { home, daemon, admin };
});

test.after.always(async (t) => {
  t.context.admin?.close();
  await t.context.daemon?.stop();
  t.context.home?.cleanup();
});

const key = (id: string) => ({ parent: "vaults/alpha", keyId: id, key: { name: "", algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "" }, initialState: 0, requestId: "" });

async function deniedEvents(admin: Clients, result: string): Promise<Array<{ principal: string; method: string; resource: string }>> {
  const r = await rpc(admin.audit, admin.audit.listAuditEvents, { parent: "vaults/-", pageSize: 1000, pageToken: "", filter: `result = ${result}` });
  return r.auditEvents.map((e) => ({ principal: e.principal, method: e.method, resource: e.resource }));
}

test("a plaintext client cannot talk to the daemon", async (t) => {
  const c = clientsFor(`127.0.0.1:${t.context.daemon.port}`, grpc.credentials.createInsecure());
  try {
    const f = await rpcError(c.keys, c.keys.getKey, { name: "vaults/alpha/keys/x" });
    t.is(f.code, grpc.status.UNAVAILABLE);
  } finally {
    c.close();
  }
});

test("a TLS client without a certificate is UNAUTHENTICATED, and the denial is audited", async (t) => {
  const c = clientsFor(t.context.daemon.address, grpc.credentials.createSsl(t.context.home.caPem));
  try {
    const f = await rpcError(c.keys, c.keys.createKey, key("nocert"));
    t.is(f.code, grpc.status.UNAUTHENTICATED);
    t.is(f.reason, "UNAUTHENTICATED");
    t.regex(f.message, /client certificate/);
  } finally {
    c.close();
  }
  const events = await deniedEvents(t.context.admin, "UNAUTHENTICATED");
  t.true(events.some((e) => e.principal === "anonymous" && e.method === "/mcko.v1.KeyService/CreateKey"));
});

test("a client certificate from a foreign CA is UNAUTHENTICATED", async (t) => {
  const rogueCa = createCa({ commonName: "Rogue CA", validityDays: 1 });
  const rogue = issueClientCert(rogueCa, { commonName: "mallory", grants: [{ role: "admin", vault: "*" }], validityDays: 1 });
  const c = clientsFor(t.context.daemon.address, grpc.credentials.createSsl(t.context.home.caPem, Buffer.from(rogue.keyPem), Buffer.from(rogue.certPem)));
  try {
    const f = await rpcError(c.vaults, c.vaults.listVaults, { pageSize: 10, pageToken: "" });
    t.is(f.code, grpc.status.UNAUTHENTICATED);
  } finally {
    c.close();
  }
  t.false((await deniedEvents(t.context.admin, "UNAUTHENTICATED")).some((e) => e.principal.includes("mallory")), "an unverified certificate never names the principal");
});

test("a viewer can read but not create; the denial is PERMISSION_DENIED and audited", async (t) => {
  const { home, daemon, admin } = t.context;
  await rpc(admin.keys, admin.keys.createKey, key("readable"));
  const viewer = clientsFor(daemon.address, mtls(home, issueClient(home, "vera", [{ role: "viewer", vault: "alpha" }])));
  try {
    const got = await rpc(viewer.keys, viewer.keys.getKey, { name: "vaults/alpha/keys/readable" });
    t.is(got.key?.name, "vaults/alpha/keys/readable");
    const f = await rpcError(viewer.keys, viewer.keys.createKey, key("by-viewer"));
    t.is(f.code, grpc.status.PERMISSION_DENIED);
    t.is(f.reason, "PERMISSION_DENIED");
    t.is(f.metadata.permission, "keys.create");
    const other = await rpcError(viewer.keys, viewer.keys.listKeys, { parent: "vaults/beta", pageSize: 10, pageToken: "", filter: "" });
    t.is(other.code, grpc.status.PERMISSION_DENIED, "a grant on alpha is nothing on beta");
    const audit = await rpcError(viewer.audit, viewer.audit.listAuditEvents, { parent: "vaults/alpha", pageSize: 10, pageToken: "", filter: "" });
    t.is(audit.code, grpc.status.PERMISSION_DENIED, "viewers do not read the audit log");
    const vaults = await rpc(viewer.vaults, viewer.vaults.listVaults, { pageSize: 10, pageToken: "" });
    t.deepEqual(vaults.vaults.map((v) => v.name), ["vaults/alpha"], "only vaults with a grant are listed");
  } finally {
    viewer.close();
  }
  const missing = await rpcError(admin.keys, admin.keys.getKey, { name: "vaults/alpha/keys/by-viewer" });
  t.is(missing.code, grpc.status.NOT_FOUND, "nothing was created");
  const denied = await deniedEvents(admin, "PERMISSION_DENIED");
  t.true(denied.some((e) => e.principal === "CN=vera" && e.method === "/mcko.v1.KeyService/CreateKey" && e.resource === "vaults/alpha/keys/by-viewer"));
  t.true(denied.some((e) => e.principal === "CN=vera" && e.method === "/mcko.v1.AuditService/ListAuditEvents"));
});

test("an auditor reads and verifies the audit log but cannot change keys", async (t) => {
  const { home, daemon, admin } = t.context;
  await rpc(admin.keys, admin.keys.createKey, key("audited"));
  const auditor = clientsFor(daemon.address, mtls(home, issueClient(home, "audra", [{ role: "auditor", vault: "*" }])));
  try {
    const events = await rpc(auditor.audit, auditor.audit.listAuditEvents, { parent: "vaults/alpha", pageSize: 1000, pageToken: "", filter: "" });
    t.true(events.auditEvents.some((e) => e.resource === "vaults/alpha/keys/audited" && e.method === "/mcko.v1.KeyService/CreateKey" && e.result === "OK"));
    const v = await rpc(auditor.audit, auditor.audit.verifyAuditChain, {});
    t.true(v.valid);
    const f = await rpcError(auditor.keys, auditor.keys.setKeyState, { name: "vaults/alpha/keys/audited", state: 3, etag: "", reason: "" });
    t.is(f.code, grpc.status.PERMISSION_DENIED);
  } finally {
    auditor.close();
  }
});

test("a key custodian of one vault manages keys there but cannot create vaults", async (t) => {
  const { home, daemon } = t.context;
  const kc = clientsFor(daemon.address, mtls(home, issueClient(home, "kim", [{ role: "key-custodian", vault: "alpha" }])));
  try {
    const k = await rpc(kc.keys, kc.keys.createKey, key("custodian-made"));
    t.is(k.key?.name, "vaults/alpha/keys/custodian-made");
    const f = await rpcError(kc.vaults, kc.vaults.createVault, { vaultId: "gamma", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    t.is(f.code, grpc.status.PERMISSION_DENIED);
  } finally {
    kc.close();
  }
});

test("health is served without a client certificate", async (t) => {
  t.is(await healthCheck(t.context.daemon.address, grpc.credentials.createSsl(t.context.home.caPem), "mcko.v1.KeyService"), "SERVING");
  t.is(await healthCheck(t.context.daemon.address, mtls(t.context.home), ""), "SERVING");
});

test("server reflection lists the API to authenticated callers only", async (t) => {
  const services = await reflectionServices(t.context.daemon.address, mtls(t.context.home));
  for (const s of ["mcko.v1.VaultService", "mcko.v1.KeyService", "mcko.v1.AuditService", "grpc.health.v1.Health"]) t.true(services.includes(s), s);
  const err = await reflectionServices(t.context.daemon.address, grpc.credentials.createSsl(t.context.home.caPem)).then(
    () => undefined,
    (e: grpc.ServiceError) => e,
  );
  t.is(err?.code, grpc.status.UNAUTHENTICATED);
});
