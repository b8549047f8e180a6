/**
 * Audit tampering: editing, deleting, inserting or reordering a record of the journal on disk makes
 * VerifyAuditChain (and `mcko audit verify`) fail and name the first bad sequence number.
 */
import anyTest, { type TestFn } from "ava";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { MCKO_BIN, clientsFor, makeHome, mtls, rpc, startDaemonProcess, type Clients, type DaemonProcess, type Home } from "../support/daemon.js";

const run = promisify(execFile);
const test = anyTest.serial as TestFn<{ home: Home; daemon: DaemonProcess; c: Clients; original: Buffer }>;

test.before(async (t) => {
  const home = await makeHome();
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  await rpc(c.vaults, c.vaults.createVault, { vaultId: "aud", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
  for (let i = 0; i < 12; i++) {
    await rpc(c.keys, c.keys.createKey, { parent: "vaults/aud", keyId: `k${i}`, key: { name: "", algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "" }, initialState: 0, requestId: "" });
  }
  t.context = { home, daemon, c, original: readFileSync(home.journalFile) };
});

test.after.always(async (t) => {
  t.context.c?.close();
  await t.context.daemon?.stop();
  t.context.home?.cleanup();
});

/** Rewrites the journal in place (same inode, as an intruder with file access would), verifies, restores. */
async function verifyTampered(t: { context: { home: Home; c: Clients; original: Buffer } }, tamper: (lines: string[]) => string[]) {
  const lines = t.context.original.toString("utf8").split("\n").filter((l) => l !== "");
  writeFileSync(t.context.home.journalFile, tamper(lines).join("\n") + "\n");
  try {
    return await rpc(t.context.c.audit, t.context.c.audit.verifyAuditChain, {});
  } finally {
    writeFileSync(t.context.home.journalFile, t.context.original);
  }
}

test("the untouched chain verifies", async (t) => {
  const r = await rpc(t.context.c.audit, t.context.c.audit.verifyAuditChain, {});
  t.true(r.valid, r.problem);
  t.is(r.recordsChecked, 13n);
  t.is(r.headSequence, 13n);
  t.is(r.firstBadSequence, 0n);
});

test("an edited record is found", async (t) => {
  const r = await verifyTampered(t, (lines) => lines.map((l, i) => (i === 4 ? l.replace('"result":"OK"', '"result":"PERMISSION_DENIED"') : l)));
  t.false(r.valid);
  t.is(r.firstBadSequence, 5n);
  t.regex(r.problem, /modified/);
});

test("an edit that also fixes the record's own hash is found at the next record", async (t) => {
  const { recordHash } = await import("../../daemon/src/core/audit/chain.js");
  const r = await verifyTampered(t, (lines) =>
    lines.map((l, i) => {
      if (i !== 6) return l;
      const rec = JSON.parse(l) as Record<string, unknown>;
      rec.principal = "CN=someone-else";
      rec.hash = recordHash(rec);
      return JSON.stringify(rec);
    }),
  );
  t.false(r.valid);
  t.is(r.firstBadSequence, 8n);
});

test("a deleted record is found", async (t) => {
  const r = await verifyTampered(t, (lines) => lines.filter((_, i) => i !== 2));
  t.false(r.valid);
  t.is(r.firstBadSequence, 3n);
  t.regex(r.problem, /missing/);
});

test("an inserted record is found", async (t) => {
  const r = await verifyTampered(t, (lines) => [...lines.slice(0, 7), lines[3]!, ...lines.slice(7)]);
  t.false(r.valid);
  t.is(r.firstBadSequence, 8n);
});

test("reordered records are found", async (t) => {
  const r = await verifyTampered(t, (lines) => [...lines.slice(0, 9), lines[10]!, lines[9]!, ...lines.slice(11)]);
  t.false(r.valid);
  t.is(r.firstBadSequence, 10n);
});

test("a truncated tail is found against the signed head", async (t) => {
  const r = await verifyTampered(t, (lines) => lines.slice(0, 10));
  t.false(r.valid);
  t.is(r.firstBadSequence, 11n);
});

test("mcko audit verify exits 2 and names the first bad record; 0 when intact", async (t) => {
  const env = { ...process.env, MCKO_HOME: t.context.home.dir, MCKO_ADDR: t.context.daemon.address };
  const ok = await run(MCKO_BIN, ["audit", "verify"], { env });
  t.regex(ok.stdout, /audit chain intact: 13 records/);
  const lines = t.context.original.toString("utf8").split("\n").filter((l) => l !== "");
  writeFileSync(t.context.home.journalFile, lines.filter((_, i) => i !== 5).join("\n") + "\n");
  try {
    const e = await run(MCKO_BIN, ["audit", "verify"], { env }).then(
      () => undefined,
      (err: { code: number; stdout: string }) => err,
    );
    t.truthy(e, "the command failed");
    t.is(e!.code, 2);
    t.regex(e!.stdout, /AUDIT CHAIN BROKEN at record 6/);
  } finally {
    writeFileSync(t.context.home.journalFile, t.context.original);
  }
});
