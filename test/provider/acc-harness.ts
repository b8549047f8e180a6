// Acceptance-test harness for the MCKO provider (the AWS provider's acceptance style, with the real parts): the real
// daemon process on a free port with a fresh home, the real `terraform` binary on PATH running the real provider
// through dev_overrides, and checks run after every step: `plan -detailed-exitcode` is 0 right after an apply, and
// the state file holds only schema attributes and nothing that looks like key material or a credential.
// Without terraform on PATH each file prints ONE loud line and skips its tests.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ExecutionContext } from "ava";
import { mckoProvider } from "../../provider/src/provider.js";
import { clientsFor, type Clients, type DaemonProcess, type Home, makeHome, mtls, startDaemonProcess } from "../support/daemon.js";
import { MCKO_PROVIDER_BIN, REPO_ROOT } from "../support/tf-plugin-launcher.js";
import { makeWorkspace, type TfResult, type TfWorkspace, terraformOnPath } from "../support/tf-terraform.js";

export const SOURCE = "registry.terraform.io/mcko/mcko";
/** The real executable Terraform runs (it bundles the provider once into node_modules/.cache and execs node on it). */
export const PROVIDER_EXECUTABLE = MCKO_PROVIDER_BIN;
export const EXAMPLES_DIR = join(REPO_ROOT, "examples/terraform");

/** True when acceptance tests can run; otherwise prints the one loud skip line for `file`. */
export function accEnabled(file: string): boolean {
  if (terraformOnPath()) return true;
  console.log(`SKIPPED: terraform not on PATH — the MCKO provider acceptance tests in ${file} did not run`);
  return false;
}

export const show = (r: TfResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

export interface Acc {
  readonly home: Home;
  readonly daemon: DaemonProcess;
  readonly clients: Clients;
  /**
   * A terraform working directory whose provider talks to this daemon (MCKO_* environment defaults); `env` adds to
   * the environment terraform and its provider processes get.
   */
  workspace(env?: Readonly<Record<string, string>>): TfWorkspace;
  close(): Promise<void>;
}

/** One daemon per test file (STYLE.md §10). */
export async function startAcc(): Promise<Acc> {
  const home = await makeHome();
  const daemon = await startDaemonProcess(home);
  const clients = clientsFor(daemon.address, mtls(home));
  const workspaces: TfWorkspace[] = [];
  return {
    home,
    daemon,
    clients,
    workspace: (extraEnv = {}) => {
      const ws = makeWorkspace({
        source: SOURCE,
        type: "mcko",
        entry: PROVIDER_EXECUTABLE,
        env: {
          MCKO_ADDR: daemon.address,
          MCKO_CA_CERT: join(home.dir, "tls/ca.pem"),
          MCKO_CLIENT_CERT: join(home.dir, "admin.pem"),
          MCKO_CLIENT_KEY: join(home.dir, "admin.key"),
          ...extraEnv,
        },
      });
      workspaces.push(ws);
      return ws;
    },
    close: async () => {
      for (const ws of workspaces) ws.cleanup();
      clients.close();
      await daemon.stop();
      home.cleanup();
    },
  };
}

export const PROVIDER_HEADER = `
terraform {
  required_providers {
    mcko = { source = "${SOURCE}" }
  }
}
provider "mcko" {}
`;

/** `terraform apply`, then the checks every apply gets: a clean `plan -detailed-exitcode` (0) and a clean state. */
export async function applyClean(t: ExecutionContext, ws: TfWorkspace, acc: Acc, ...extra: string[]): Promise<TfResult> {
  const apply = await ws.run("apply", "-no-color", "-input=false", "-auto-approve", ...extra);
  t.is(apply.code, 0, show(apply));
  if (apply.code !== 0) return apply;
  await planExit(t, ws, 0);
  checkState(t, ws, acc);
  return apply;
}

/** `terraform plan -detailed-exitcode`, asserting its exit code (0 no changes, 1 error, 2 changes). */
export async function planExit(t: ExecutionContext, ws: TfWorkspace, code: 0 | 1 | 2): Promise<TfResult> {
  const plan = await ws.run("plan", "-no-color", "-input=false", "-detailed-exitcode");
  t.is(plan.code, code, show(plan));
  return plan;
}

interface StateFile {
  resources?: { mode: string; type: string; name: string; instances: { attributes: Record<string, unknown> }[] }[];
}

export function readState(ws: TfWorkspace): StateFile {
  try {
    return JSON.parse(readFileSync(join(ws.dir, "terraform.tfstate"), "utf8")) as StateFile;
  } catch {
    return {};
  }
}

/** The attributes of `type.name` in the state file, or undefined when it is not there. */
export function stateAttributes(ws: TfWorkspace, address: string): Record<string, unknown> | undefined {
  const [type, name] = address.split(".");
  const r = readState(ws).resources?.find((x) => x.mode === "managed" && x.type === type && x.name === name);
  return r?.instances[0]?.attributes;
}

const provider = mckoProvider();
const schemaAttributes = new Map<string, Set<string>>([
  ...provider.resources.map((r) => [`managed:${r.typeName}`, new Set([...Object.keys(r.schema.block.attributes), ...Object.keys(r.schema.block.blocks ?? {})])] as const),
  ...provider.dataSources.map((d) => [`data:${d.typeName}`, new Set(Object.keys(d.schema.block.attributes))] as const),
]);

/** Long base64 runs in the daemon's data files: wrapped blobs and anything else that must never reach the state. */
function storeSecrets(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else for (const m of readFileSync(p, "latin1").matchAll(/[A-Za-z0-9+/]{40,}={0,2}/g)) out.add(m[0]);
    }
  };
  walk(dir);
  return out;
}

/**
 * The state holds only schema attributes, no credential (client key, PEM), no run that looks like material (base64
 * or hex longer than a KCV), and none of the daemon's stored blobs. KCVs are the only hex values allowed.
 */
export function checkState(t: ExecutionContext, ws: TfWorkspace, acc: Acc): void {
  let text: string;
  try {
    text = readFileSync(join(ws.dir, "terraform.tfstate"), "utf8");
  } catch {
    return;
  }
  const state = JSON.parse(text) as StateFile;
  const kcvs = new Set<string>();
  for (const r of state.resources ?? []) {
    const allowed = schemaAttributes.get(`${r.mode}:${r.type}`);
    t.truthy(allowed, `unexpected resource type ${r.type} in state`);
    for (const inst of r.instances) {
      for (const k of Object.keys(inst.attributes)) t.true(allowed?.has(k), `${r.type}.${r.name}: state attribute ${k} is not in the schema`);
      collectKcvs(inst.attributes, kcvs);
    }
  }
  t.false(text.includes("PRIVATE KEY"), "no private key in state");
  t.false(text.includes("BEGIN CERTIFICATE"), "no certificate in state");
  t.false(text.includes(acc.home.admin.keyPem.toString("utf8").split("\n")[1] ?? "\u0000"), "the client key never reaches the state");
  for (const m of text.matchAll(/[A-Za-z0-9+/]{65,}={0,2}/g)) t.fail(`state holds a long base64/hex run: ${m[0].slice(0, 20)}...`);
  for (const m of text.matchAll(/"([0-9a-f]{7,})"/g)) t.true(kcvs.has(m[1]!), `hex string ${m[1]} in state is not a KCV`);
  for (const s of storeSecrets(acc.home.dataDir)) if (!kcvs.has(s)) t.false(text.includes(s), `state holds a blob from the daemon's store: ${s.slice(0, 16)}...`);
}

function collectKcvs(v: unknown, out: Set<string>): void {
  if (Array.isArray(v)) v.forEach((x) => collectKcvs(x, out));
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (k === "kcv" && typeof x === "string" && x !== "") out.add(x);
      else collectKcvs(x, out);
    }
  }
}

/** Promisified daemon calls for out-of-band changes and destroy checks. */
export function daemonCall<Req, Res>(
  client: object,
  fn: (req: Req, cb: (e: Error | null, r: Res) => void) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((res, rej) => fn.call(client, req, (e, r) => (e ? rej(e) : res(r))));
}
