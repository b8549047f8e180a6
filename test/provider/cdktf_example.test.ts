// Acceptance: the CDKTF example (examples/cdktf) with the real terraform and the real daemon, once on cdktf 0.21
// (main.ts, bindings in provider/cdktf/cdktf) and once on CDK Terrain (main-cdktn.ts, provider/cdktf/cdktn). The app
// runs with node + tsx (no cdktf CLI) and synthesizes cdk.tf.json without the daemon's address or any credential;
// terraform then runs on that file: init (the synthesized local backend needs it, so the provider comes from a
// filesystem mirror made by provider/bin/make-mirror, the way a user installs it; dev_overrides would make init query
// the public registry), plan (3 to add), apply, `plan -detailed-exitcode` = 0, destroy. Canary: the key material of
// the keys the app created is recovered from the daemon's store (the daemon stopped meanwhile, then restarted on the
// same port), and neither it nor the client key appears in any file of the terraform working directory (state,
// backup, cdk.tf.json, .terraform/) or in the synth output.
import { execFile } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import test, { type ExecutionContext } from "ava";
import { status } from "@grpc/grpc-js";
import type { KeyRecord } from "../../daemon/src/core/keys.js";
import { kwpUnwrap } from "../../daemon/src/hsm/kcv.js";
import { readKeyring } from "../../daemon/src/hsm/software/keyring.js";
import { LowdbStore } from "../../daemon/src/store/lowdb/lowdb-store.js";
import { KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import type { GetKeyResponse } from "../../protos/gen/mcko/v1/key_service.js";
import type { GetVaultResponse } from "../../protos/gen/mcko/v1/vault_service.js";
import { type Clients, clientsFor, type DaemonProcess, mtls, REPO, startDaemonProcess } from "../support/daemon.js";
import { recoverMaterialsForTest } from "../support/softhsm.js";
import type { TfResult, TfWorkspace } from "../support/tf-terraform.js";
import { type Acc, accEnabled, applyClean, checkState, daemonCall, planExit, readState, show, SOURCE, startAcc } from "./acc-harness.js";
import { filesUnder } from "../support/files.js";

const run = promisify(execFile);
const enabled = accEnabled("cdktf_example.test.ts");
const accTest = enabled ? test.serial : test.skip;

let acc: Acc;
let tmp: string;
let mirror: string;
/** The daemon serving now: acc.daemon until the canary restarts it on the same port. */
let daemon: DaemonProcess;
let clients: Clients;
const restarted: Array<{ daemon: DaemonProcess; clients: Clients }> = [];
test.before(async () => {
  if (!enabled) return;
  acc = await startAcc();
  daemon = acc.daemon;
  clients = acc.clients;
  tmp = mkdtempSync(join(tmpdir(), "mcko-cdktf-"));
  mirror = join(tmp, "mirror");
  await run(join(REPO, "provider/bin/make-mirror"), [mirror]);
});
test.after.always(async () => {
  for (const r of restarted) {
    r.clients.close();
    await r.daemon.stop();
  }
  await acc?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const getKey = (name: string) => daemonCall<{ name: string }, GetKeyResponse>(clients.keys, clients.keys.getKey, { name });
const getVault = (name: string) => daemonCall<{ name: string }, GetVaultResponse>(clients.vaults, clients.vaults.getVault, { name });
const codeOf = (p: Promise<unknown>) => p.then(() => 0, (e: { code: number }) => e.code);

/** The environment without anything that could point the synth at the daemon or change where it writes. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("MCKO_") || k.startsWith("TF_") || k.startsWith("CDKTF_") || k === "NODE_OPTIONS") delete env[k];
  return { ...env, CHECKPOINT_DISABLE: "1", ...extra };
}

/** A terraform working directory whose CLI config installs the MCKO provider from the mirror (and nothing from the network). */
let wsCount = 0;
function mirrorWorkspace(): TfWorkspace {
  const dir = join(tmp, `ws-${++wsCount}`);
  const work = join(dir, "work");
  mkdirSync(work, { recursive: true });
  const cliConfig = join(dir, "terraformrc");
  writeFileSync(
    cliConfig,
    `provider_installation {\n  filesystem_mirror {\n    path    = ${JSON.stringify(mirror)}\n    include = ["registry.terraform.io/mcko/*"]\n  }\n  direct {\n    exclude = ["registry.terraform.io/mcko/*"]\n  }\n}\n`,
  );
  chmodSync(cliConfig, 0o600);
  const env = cleanEnv({
    TF_CLI_CONFIG_FILE: cliConfig,
    TF_IN_AUTOMATION: "1",
    TF_INPUT: "0",
    MCKO_ADDR: daemon.address,
    MCKO_CA_CERT: join(acc.home.dir, "tls/ca.pem"),
    MCKO_CLIENT_CERT: join(acc.home.dir, "admin.pem"),
    MCKO_CLIENT_KEY: join(acc.home.dir, "admin.key"),
  });
  return {
    dir: work,
    writeConfig: (hcl) => writeFileSync(join(work, "main.tf"), hcl),
    run: (...args) =>
      run("terraform", args, { cwd: work, env, maxBuffer: 64 << 20 }).then(
        (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
        (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" }),
      ),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

interface CdkTfJson {
  "//": { metadata: { version: string; stackName: string; backend: string } };
  terraform: { backend: { local: { path: string } }; required_providers: { mcko: { source: string; version?: string } } };
  provider: { mcko: Record<string, unknown>[] };
  resource: Record<string, Record<string, Record<string, unknown>>>;
  data: Record<string, Record<string, Record<string, unknown>>>;
  output: Record<string, { value: string }>;
}

/** Runs the app with node + tsx; returns the path of the synthesized cdk.tf.json and its parsed content. */
async function synth(t: ExecutionContext, app: string, outdir: string): Promise<{ file: string; json: CdkTfJson }> {
  const started = Date.now();
  await run(process.execPath, ["--import", "tsx", join(REPO, "examples/cdktf", app)], { cwd: REPO, env: cleanEnv({ CDKTF_OUTDIR: outdir }) });
  t.log(`${app}: synth ${Date.now() - started} ms`);
  const file = join(outdir, "stacks/keys/cdk.tf.json");
  return { file, json: JSON.parse(readFileSync(file, "utf8")) as CdkTfJson };
}

/** Every textual form the material could take: hex, and base64/base64url at all three byte alignments (as daemon-canary). */
function needles(material: Buffer): string[] {
  const out = [material.toString("hex"), material.toString("hex").toUpperCase()];
  for (let shift = 0; shift < 3; shift++) {
    const part = material.subarray(shift);
    const b64 = part.toString("base64").replace(/=+$/, "");
    out.push(b64.slice(0, b64.length - 2), part.toString("base64url").slice(0, b64.length - 2));
  }
  return out.filter((n) => n.length >= 16);
}

/**
 * Stops the daemon, recovers the plaintext of every key version in `vault` from its store (test-only knowledge: the
 * software master key file, or the SoftHSM2 token), and starts the daemon again on the same port.
 */
async function recoverVaultMaterials(vault: string): Promise<Buffer[]> {
  const port = daemon.port;
  await daemon.stop();
  const blobs: Array<{ algorithm: string; blob: Buffer; masterKcv: string }> = [];
  const store = await LowdbStore.open({ dir: join(acc.home.dataDir, "vault") });
  try {
    const page = await store.list<KeyRecord>(`key/${vault}/`, { pageSize: 1000 });
    for (const rec of page.records) {
      for (const v of rec.value.versions) {
        if (v.blob !== null && v.masterKcv !== null) blobs.push({ algorithm: rec.value.algorithm, blob: Buffer.from(v.blob, "base64"), masterKcv: v.masterKcv });
      }
    }
  } finally {
    await store.close();
  }
  let materials: Buffer[];
  if (acc.home.token) materials = await recoverMaterialsForTest(acc.home.token, "mcko-master", blobs);
  else {
    const keyring = await readKeyring(join(acc.home.dir, "master.key"));
    materials = blobs.map((b) => kwpUnwrap(keyring.keys.get(b.masterKcv)!, b.blob));
  }
  daemon = await startDaemonProcess(acc.home, {}, port);
  clients = clientsFor(daemon.address, mtls(acc.home));
  restarted.push({ daemon, clients });
  return materials;
}

/** No needle (key material, client key) in any file under `dirs`; returns how many files were searched. */
function canary(t: ExecutionContext, dirs: readonly string[], secrets: readonly string[]): number {
  let files = 0;
  for (const f of dirs.flatMap(filesUnder)) {
    files++;
    const text = readFileSync(f).toString("latin1");
    secrets.forEach((s, i) => {
      if (text.includes(s)) t.fail(`${f} holds secret #${i} (key material or a client-key line; not printed)`);
    });
  }
  return files;
}

/** The base64 lines of the daemon client's private key PEM: a credential that must stay in its file. */
const clientKeyLines = (): string[] => acc.home.admin.keyPem.toString("utf8").split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----"));

async function exampleRoundTrip(t: ExecutionContext, app: string, library: "cdktf" | "cdktn"): Promise<void> {
  t.timeout(600_000);
  const outdir = join(tmp, `${library}.out`);
  const { file, json } = await synth(t, app, outdir);
  const libraryVersion = (JSON.parse(readFileSync(join(REPO, "node_modules", library, "package.json"), "utf8")) as { version: string }).version;
  t.is(json["//"].metadata.version, libraryVersion, `synthesized by ${library}`);
  t.is(json.terraform.required_providers.mcko.source, SOURCE);
  t.deepEqual(json.terraform.backend, { local: { path: "terraform.tfstate" } });
  t.deepEqual(json.provider.mcko, [{}], "no address and no credential in cdk.tf.json: the provider reads MCKO_* from Terraform's environment");
  t.deepEqual(Object.keys(json.resource).sort(), ["mcko_key", "mcko_vault"]);
  t.deepEqual(Object.keys(json.resource["mcko_key"] ?? {}).sort(), ["data", "legacy_signing"]);
  t.is(json.resource["mcko_key"]?.["data"]?.["vault"], "${mcko_vault.payments.id}", "references become interpolations");
  t.deepEqual(json.data["mcko_keys"]?.["prod_active"]?.["depends_on"], ["mcko_key.data", "mcko_key.legacy_signing"]);

  const ws = mirrorWorkspace();
  try {
    copyFileSync(file, join(ws.dir, "cdk.tf.json"));
    const init = await ws.run("init", "-no-color", "-input=false");
    t.is(init.code, 0, show(init));
    t.regex(init.stdout, /Successfully configured the backend "local"/);
    t.regex(init.stdout, /Installed mcko\/mcko v\d+\.\d+\.\d+ \(unauthenticated\)/);

    const plan = await planExit(t, ws, 2);
    t.regex(plan.stdout, /Plan: 3 to add, 0 to change, 0 to destroy/);
    const started = Date.now();
    const apply = await applyClean(t, ws, acc); // apply, then plan -detailed-exitcode = 0 and the harness's state checks
    t.log(`${library}: apply + plan ${Date.now() - started} ms`);
    t.regex(apply.stdout, /Resources: 3 added, 0 changed, 0 destroyed/);

    const data = (await getKey("vaults/payments/keys/data-key")).key!;
    t.is(data.algorithm, KeyAlgorithm.KEY_ALGORITHM_AES_256);
    t.is(data.state, KeyState.KEY_STATE_ACTIVE);
    t.deepEqual(data.labels, { env: "prod", team: "payments" });
    t.is(data.rotationPeriod?.seconds, 2592000n);
    const legacy = (await getKey("vaults/payments/keys/legacy-signing")).key!;
    t.is(legacy.algorithm, KeyAlgorithm.KEY_ALGORITHM_EC_P256);
    t.is(legacy.state, KeyState.KEY_STATE_DEACTIVATED);
    t.is((await getVault("vaults/payments")).vault?.displayName, "Payments");

    const out = await ws.run("output", "-no-color", "-json");
    t.is(out.code, 0, show(out));
    const outputs = JSON.parse(out.stdout) as Record<string, { value: unknown; sensitive: boolean }>;
    t.is(outputs["data_key_id"]?.value, "vaults/payments/keys/data-key");
    t.is(outputs["data_key_kcv"]?.value, data.versions.find((v) => v.versionNumber === data.primaryVersion)?.kcv, "the KCV output is the daemon's");
    t.deepEqual(outputs["active_prod_keys"]?.value, ["vaults/payments/keys/data-key"]);

    // Canary: the material of both keys and the client key appear nowhere in the working directory or the synth output.
    const materials = await recoverVaultMaterials("payments");
    t.is(materials.length, 2, "one version per key was recovered for the search");
    const secrets = [...materials.flatMap(needles), ...clientKeyLines()];
    for (const m of materials) m.fill(0);
    const searched = canary(t, [ws.dir, outdir], secrets);
    t.true(searched >= 3, `searched cdk.tf.json, the state and .terraform/ (${searched} files)`);

    // Against the restarted daemon (same port): still no changes, then destroy.
    const after = await ws.run("plan", "-no-color", "-input=false", "-detailed-exitcode");
    t.is(after.code, 0, show(after));
    const destroy: TfResult = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
    t.is(destroy.code, 0, show(destroy));
    t.regex(destroy.stdout, /Resources: 3 destroyed/);
    t.is(await codeOf(getKey("vaults/payments/keys/data-key")), status.NOT_FOUND);
    t.is(await codeOf(getKey("vaults/payments/keys/legacy-signing")), status.NOT_FOUND);
    t.is(await codeOf(getVault("vaults/payments")), status.NOT_FOUND, "destroy removed the vault at the daemon");
    t.deepEqual(readState(ws).resources ?? [], [], "the state is empty after destroy");
    checkState(t, ws, acc);
    canary(t, [ws.dir], secrets);
  } finally {
    ws.cleanup();
  }
}

accTest("cdktf example (cdktf 0.21): synthesizes; terraform init, apply, plan -detailed-exitcode 0, destroy; no key material or credential in any file", async (t) => {
  await exampleRoundTrip(t, "main.ts", "cdktf");
});

accTest("cdktf example on CDK Terrain (cdktn): the same round trip with the cdktn bindings", async (t) => {
  await exampleRoundTrip(t, "main-cdktn.ts", "cdktn");
});
