/**
 * The keystore connector contract (STYLE.md §1.6, §10): one suite, run through the real daemon process against every
 * keystore target (its emulator or token). A thin file per target, `test/integration/connector-contract-<target>.test.ts`,
 * passes a `ConnectorTarget` to `connectorContract(test, target)`. The suite registers four serial tests, each owning
 * its emulator, MCKO home and daemon:
 *
 * - **bad input**: an unknown keystore type, a type that disagrees with its config, malformed settings, a location
 *   that does not exist, wrong credentials (dry run and stored), an algorithm the cloud cannot import → a clear error
 *   naming the field or carrying the cloud's refusal, and nothing stored changes (keystores, distributions, cloud
 *   keys); fixing the credentials makes the push work; caller-supplied credentials work per call; drift is seen live
 *   and repaired; canary: no credential appears in any daemon log line (trace level), stored file, audit event,
 *   response or error.
 * - **crash**: the daemon is SIGKILLed between each pair of cloud calls of a push (the next call is held by a scripted
 *   timeout, so it never takes effect) and after each cloud-changing call whose answer is lost; after a restart the
 *   push completes: one cloud key per push, the vault's KCV, the name points at it, a retried create answers the
 *   same, and the cloud holds no untracked key.
 * - **faults**: with 30% throttling and 5% 5xx injected (seeded), 200 distributions converge to IN_SYNC with exactly
 *   one cloud key, one material and one name each and the vault's KCVs.
 * - **follow**: a PRE_ACTIVATION key's distribution waits and goes out on activation; scripted throttling, timeouts
 *   and lost answers on every call of a push are retried without a duplicate; a key lost out of band is pushed
 *   again by SyncDistribution; DeleteDistribution schedules deletion; a destroyed and deleted key's cloud key is
 *   scheduled for deletion; pushes are audited with their request id and the HSM's software step.
 *
 * Capabilities a target may lack, declared in its descriptor and never passed silently: `noCredentialCheck` (an
 * emulator that authenticates nobody: wrong credentials are shown by `refusedAccess` settings, and the test logs that
 * caller credentials and the canary are not shown), `noFaults` (a local token has no throttling and no 5xx: the faults
 * test is registered as "not applicable" and logs why, the follow test runs without scripted faults) with
 * `randomCrash` (no call log shows a push's progress from outside: the daemon is SIGKILLed at seeded random moments
 * during streams of pushes instead of between named calls), `deletionRemoves` (no deletion window).
 */
import * as grpc from "@grpc/grpc-js";
import type { TestFn } from "ava";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CloudKeyState, SyncState, type Distribution } from "../../protos/gen/mcko/v1/distribution.js";
import { KeyAlgorithm, KeyState, type Key } from "../../protos/gen/mcko/v1/key.js";
import { CredentialSource, KeystoreType, type Keystore } from "../../protos/gen/mcko/v1/keystore.js";
import type { FaultConfig, ScriptedFault } from "../emulators/common/faults.js";
import type { CallRecord } from "../emulators/common/records.js";
import { clientsFor, decodeFailure, makeHome, mtls, rpc, rpcError, startDaemonProcess, type Clients, type DaemonProcess, type Home } from "../support/daemon.js";
import { keystoreClientsFor, newKey, type KeystoreClients } from "../support/keystores.js";
import { filesUnder } from "../support/files.js";

/** A cloud key as the target's own admin interface (not the connector) sees it. */
export interface CloudKeyInfo {
  /** What `Distribution.cloud_key_id` holds for it (AWS key id, Azure key name, …). */
  readonly id: string;
  /** The names (aliases) that resolve to it; `Distribution.cloud_alias` must be among them. */
  readonly names: readonly string[];
  /** Tags or labels of the key (of its current version where the cloud tags versions). */
  readonly tags: Readonly<Record<string, string>>;
  readonly state: "ENABLED" | "DISABLED" | "PENDING_IMPORT" | "DELETION_SCHEDULED" | "OTHER";
  /** KCV of the current material at the target (DESIGN.md format), when it holds material. */
  readonly kcv: string | undefined;
  /** How many materials / versions the key holds (a duplicated import shows up as 2). */
  readonly materialCount: number;
  /** The deletion window the target recorded, where the cloud takes one per key. */
  readonly deletionWindowDays?: number;
}

/** The fault-injection and call-log hooks every emulator offers (test/emulators/common). */
export interface FaultHooks {
  setFaults(config: FaultConfig): void;
  failNext(fault: ScriptedFault): void;
  clearFaults(): void;
  calls(): CallRecord[];
  clearCalls(): void;
  waitForCall(predicate: (call: CallRecord) => boolean): Promise<CallRecord>;
}

/** One running target (emulator or token) with the credentials it accepts. */
export interface TargetWorld {
  /** Environment the daemon needs to reach the target (e.g. SOFTHSM2_CONF of a token). */
  readonly daemonEnv?: Readonly<Record<string, string>>;
  /** Credentials the target accepts, by proto field name (snake_case), e.g. `{ secret_access_key: … }`. */
  readonly credentials: Readonly<Record<string, string>>;
  /** Well-formed credentials the target refuses (same fields). */
  readonly wrongCredentials: Readonly<Record<string, string>>;
  /** The keystore's `config` oneof pointing at this target, with these credentials set (none when empty). */
  config(credentials: Readonly<Record<string, string>>): NonNullable<Keystore["config"]>;
  /** The emulator's fault injection and call log; absent where the target has none (`ConnectorTarget.noFaults` says why). */
  readonly faults?: FaultHooks;
  /**
   * Every cloud key MCKO could have made, live or scheduled for deletion (not the connector's own infrastructure such
   * as a key exchange key), read through the target's own interface. A key made but still without material (a
   * half-done push) is listed as PENDING_IMPORT.
   */
  cloudKeys(): CloudKeyInfo[] | Promise<CloudKeyInfo[]>;
  /** Out-of-band changes, as someone in the cloud's console would make them. */
  disableOutOfBand(id: string): void | Promise<void>;
  deleteOutOfBand(id: string): void | Promise<void>;
  close(): Promise<void>;
}

/** A bad setting and the error it must get (field paths in proto names, e.g. `keystore.aws_kms.endpoint`). */
export interface BadSettingCase {
  readonly title: string;
  readonly config: (w: TargetWorld) => NonNullable<Keystore["config"]>;
  /** Dry run (the cloud is asked) or a real create (validation only). */
  readonly validateOnly: boolean;
  readonly code: grpc.status;
  /** Exactly these field violations (sorted). */
  readonly fieldViolations: readonly string[];
  /** What the message must say, where no field violation can (e.g. the cloud's refusal naming the setting). */
  readonly message?: RegExp;
  /** The ErrorInfo reason, where it matters (e.g. CLOUD_CREDENTIALS_REJECTED for a refusal). */
  readonly reason?: string;
}

export interface ConnectorTarget {
  /** Short id: the keystore id in tests and the `<target>` of the test file name. */
  readonly id: string;
  readonly title: string;
  readonly type: KeystoreType;
  /** The proto field of the type's config in the Keystore oneof, e.g. `aws_kms`. */
  readonly configField: string;
  start(): Promise<TargetWorld>;
  /** An algorithm the target imports (used by the crash, faults and follow tests). */
  readonly algorithm: KeyAlgorithm;
  /** An algorithm the target cannot import, and what the refusal must say. */
  readonly unsupported: { readonly algorithm: KeyAlgorithm; readonly message: RegExp };
  /**
   * The emulator's operation names of the cloud calls of a push on a freshly started daemon whose keystore already
   * holds MCKO's infrastructure (e.g. a key exchange key), in order. The crash test checks this list against the
   * call log of a real push, then kills the daemon between each adjacent pair.
   */
  readonly pushCalls: readonly string[];
  /** The calls among `pushCalls` that change the cloud (their answer can be lost after they took effect). */
  readonly mutatingPushCalls: readonly string[];
  /** The call that puts the material in (after it, the cloud key holds the vault's KCV). */
  readonly importCall: string;
  /** The call that deletes or schedules deletion of a cloud key. */
  readonly deletionCall: string;
  /** Whether a key pushed again after being lost out of band gets a new cloud id (false where the id is the name). */
  readonly recreatedKeyGetsNewId: boolean;
  /** The deletion window the test keystore sets and the target records per key (undefined: the cloud has none per key). */
  readonly deletionWindowDays: number | undefined;
  /** Settings that must be refused: malformed endpoint, a location that does not exist, … */
  readonly badSettings: readonly BadSettingCase[];
  /** The cloud's error code for the wrong credentials (or for `refusedAccess`) (ErrorInfo metadata `cloudErrorCode`). */
  readonly wrongCredentialsCloudCode: string;
  /** The credential field a wrong-credentials keystore is fixed with (UpdateKeystore mask `<configField>.<field>`). */
  readonly fixCredentialField?: string;
  /** Extra per-call timing for slow targets. */
  readonly cloudAttemptTimeoutMs?: number;
  /** Fields every keystore of the suite gets (e.g. `allowSoftwareWrap` where the target's wrap needs it). */
  readonly keystoreExtra?: Partial<Keystore>;
  /**
   * Set where the target checks no credentials (why, e.g. an emulator that authenticates nobody): the suite then
   * shows the refusal with `refusedAccess` instead of wrong credentials and logs the credential points (caller
   * credentials, the canary) it cannot show.
   */
  readonly noCredentialCheck?: string;
  /**
   * Stored settings the target refuses to serve and the one-field UpdateKeystore that fixes them. Default: the
   * wrong credentials, fixed with `fixCredentialField`.
   */
  readonly refusedAccess?: {
    readonly config: (w: TargetWorld) => NonNullable<Keystore["config"]>;
    /** UpdateKeystore mask, e.g. `gcp_kms.project`. */
    readonly fixMask: string;
    readonly fix: (w: TargetWorld) => NonNullable<Keystore["config"]>;
  };
  /**
   * Set where the target has no fault injection (why, e.g. a local token has no throttling and no 5xx): the faults
   * test says so and shows nothing, the follow test runs without its scripted faults, and the crash test needs
   * `randomCrash`.
   */
  readonly noFaults?: string;
  /**
   * Crash points where no call log shows the push's progress: the daemon is SIGKILLed at random moments during a
   * stream of pushes, `rounds` times; afterwards every acknowledged distribution is present exactly once, no cloud
   * key is without its distribution, none is duplicated (unacknowledged pushes are retried with their request id).
   */
  readonly randomCrash?: { readonly rounds: number; readonly pushesPerRound: number; readonly maxDelayMs: number; readonly seed: number };
  /** Deletion removes the key at once (no deletion window: it vanishes from `cloudKeys`). */
  readonly deletionRemoves?: boolean;
}

const VAULT = "contract";
type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall;

function rpcWith<Req, Res>(client: grpc.Client, fn: Unary<Req, Res>, req: Req, md: grpc.Metadata): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(client, req, md, { deadline: Date.now() + 30_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

export function keystoreOf(target: ConnectorTarget, config: NonNullable<Keystore["config"]>, extra: Partial<Keystore> = {}): Keystore {
  return {
    name: "",
    type: target.type,
    config,
    credentialSource: 0,
    hasCredentials: false,
    allowSoftwareWrap: false,
    deletionWindowDays: 0,
    maxConcurrency: 0,
    description: "",
    lastTestResult: "",
    etag: "",
    distributionCount: 0n,
    ...target.keystoreExtra,
    ...extra,
  };
}

/** A daemon with clients, restartable. */
class Daemon {
  process!: DaemonProcess;
  c!: Clients;
  k!: KeystoreClients;
  constructor(
    readonly home: Home,
    readonly env: Readonly<Record<string, string>> = {},
  ) {}
  async start(): Promise<void> {
    this.process = await startDaemonProcess(this.home, { ...this.env });
    this.c = clientsFor(this.process.address, mtls(this.home));
    this.k = keystoreClientsFor(this.process.address, mtls(this.home));
  }
  #closeClients(): void {
    this.c?.close();
    this.k?.close();
  }
  async kill(): Promise<void> {
    await this.process.kill();
    this.#closeClients();
  }
  get running(): boolean {
    return this.process !== undefined && this.process.child.exitCode === null && this.process.child.signalCode === null;
  }
  async stop(): Promise<void> {
    this.#closeClients();
    if (this.running) await this.process.stop();
  }
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
  async createVault(id = VAULT): Promise<void> {
    await rpc(this.c.vaults, this.c.vaults.createVault, { vaultId: id, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
  }
  async createKeystore(target: ConnectorTarget, id: string, keystore: Keystore): Promise<Keystore> {
    return (await rpc(this.k.keystores, this.k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: id, keystore, requestId: "", validateOnly: false })).keystore!;
  }
  async createKey(id: string, algorithm: KeyAlgorithm, initialState: KeyState = 0): Promise<Key> {
    return (await rpc(this.c.keys, this.c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: id, key: newKey(algorithm), initialState, requestId: "" })).key!;
  }
  async distribute(key: string, keystore: string, requestId = "", timeoutMs = 30_000): Promise<Distribution> {
    return (await rpc(this.k.distributions, this.k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/${key}`, keystore: `vaults/${VAULT}/keystores/${keystore}`, requestId }, timeoutMs)).distribution!;
  }
  async get(key: string, keystore: string, readLive = false): Promise<Distribution> {
    return (await rpc(this.k.distributions, this.k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/${key}/distributions/${keystore}`, readLive })).distribution!;
  }
  /** Reads until `pred` holds (the daemon converges in the background; the test's timeout bounds the wait). */
  async until(key: string, keystore: string, pred: (d: Distribution) => boolean): Promise<Distribution> {
    for (;;) {
      const d = await this.get(key, keystore);
      if (pred(d)) return d;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  async list(keystore?: string): Promise<Distribution[]> {
    const out: Distribution[] = [];
    let pageToken = "";
    do {
      const r = await rpc(this.k.distributions, this.k.distributions.listDistributions, { parent: `vaults/${VAULT}/keys/-`, pageSize: 1000, pageToken, keystore: keystore ? `vaults/${VAULT}/keystores/${keystore}` : "" });
      out.push(...r.distributions);
      pageToken = r.nextPageToken;
    } while (pageToken);
    return out;
  }
}

async function withWorld(target: ConnectorTarget, homeConfig: Record<string, unknown>, body: (w: TargetWorld, d: Daemon) => Promise<void>, keepHome = false): Promise<Home> {
  const world = await target.start();
  const home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: target.cloudAttemptTimeoutMs ?? 3000, cloudDeadlineMs: 20_000, ...homeConfig });
  const d = new Daemon(home, world.daemonEnv);
  try {
    await d.start();
    await body(world, d);
  } catch (e) {
    if (e && typeof e === "object" && "code" in e && "metadata" in e) throw new Error(`gRPC call failed: ${JSON.stringify(decodeFailure(e as grpc.ServiceError))}`);
    throw e;
  } finally {
    await d.stop();
    await world.close();
    if (!keepHome) home.cleanup();
  }
  return home;
}

const tagged = async (w: TargetWorld, requestId: string) => (await w.cloudKeys()).filter((x) => x.tags["mcko:request-id"] === requestId);

function hooks(w: TargetWorld): FaultHooks {
  if (!w.faults) throw new Error("this test needs the target's fault injection and call log");
  return w.faults;
}

/** A small seeded generator (mulberry32), so a random crash schedule can be replayed from the test's seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

async function inBatches(n: number, parallel: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = next++; i < n; i = next++) await fn(i);
    }),
  );
}

export function connectorContract(test: TestFn, target: ConnectorTarget): void {
  const KS = target.id;
  const other = target.type === KeystoreType.KEYSTORE_TYPE_AWS_KMS ? KeystoreType.KEYSTORE_TYPE_GCP_KMS : KeystoreType.KEYSTORE_TYPE_AWS_KMS;
  const prefix = `keystore.${target.configField}`;

  test.serial(`${target.title}: bad input gets a clear error naming the field or the cloud's refusal and changes nothing; caller credentials; live drift; no credential leaks anywhere (canary)`, async (t) => {
    t.timeout(300_000);
    const responses: string[] = [];
    const seen = (x: unknown) => responses.push(JSON.stringify(x, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v)));
    let needles: string[] = [];
    let logs = "";
    const home = await withWorld(
      target,
      { logLevel: "trace", cloudDeadlineMs: 8000 },
      async (w, d) => {
        if (target.noCredentialCheck) t.log(`${target.title} checks no credentials (${target.noCredentialCheck}): wrong credentials are shown as refused settings, caller credentials and the credential canary cannot be shown`);
        needles = [...Object.values(w.credentials), ...Object.values(w.wrongCredentials)].flatMap((s) => [s, Buffer.from(s).toString("base64").slice(0, 24), Buffer.from(s).toString("hex").slice(0, 32)]);
        const { c, k } = d;
        const fail = async <Req, Res>(client: grpc.Client, fn: Unary<Req, Res>, req: Req) => {
          const f = await rpcError(client, fn, req);
          seen(f);
          return f;
        };
        const create = (id: string, keystore: Keystore, validateOnly: boolean) => ({ parent: `vaults/${VAULT}`, keystoreId: id, keystore, requestId: "", validateOnly });
        await d.createVault();
        const ks = await d.createKeystore(target, KS, keystoreOf(target, w.config(w.credentials)));
        seen(ks);
        t.true(ks.hasCredentials);
        t.is(ks.config?.$case, w.config({}).$case);
        const echoed = ks.config?.value as unknown as Record<string, unknown>;
        const given = w.config(w.credentials).value as unknown as Record<string, unknown>;
        for (const field of Object.keys(w.credentials)) {
          const camel = field.replace(/_([a-z])/g, (_m, ch: string) => ch.toUpperCase());
          t.is(echoed[camel], "", `credential ${field} is write-only`);
        }
        for (const [f, v] of Object.entries(given)) if (typeof v === "string" && !Object.values(w.credentials).includes(v) && v !== "") t.is(echoed[f], v, `setting ${f} is returned`);

        const snapshot = async () => ({
          keystores: (await rpc(k.keystores, k.keystores.listKeystores, { parent: `vaults/${VAULT}`, pageSize: 0, pageToken: "" })).keystores.map((x) => `${x.name}:${x.etag}`),
          distributions: (await d.list()).map((x) => `${x.name}:${x.etag}`),
          cloudKeys: (await w.cloudKeys()).map((x) => `${x.id}:${x.state}:${x.kcv ?? ""}`).sort(),
        });
        const before = await snapshot();

        // Unknown keystore type; a type its config disagrees with.
        let f = await fail(k.keystores, k.keystores.createKeystore, create("x1", { ...keystoreOf(target, w.config(w.credentials)), type: 99 as KeystoreType, config: undefined }, false));
        t.is(f.code, grpc.status.INVALID_ARGUMENT);
        t.true(f.fieldViolations.includes("keystore.type"), f.message);
        f = await fail(k.keystores, k.keystores.createKeystore, create("x2", { ...keystoreOf(target, w.config(w.credentials)), type: other }, false));
        t.is(f.code, grpc.status.INVALID_ARGUMENT);
        t.true(f.fieldViolations.includes("keystore.type"), f.message);
        // Malformed settings, a location that does not exist: the field is named.
        for (const bad of target.badSettings) {
          f = await fail(k.keystores, k.keystores.createKeystore, create("x3", keystoreOf(target, bad.config(w)), bad.validateOnly));
          t.is(f.code, bad.code, `${bad.title}: ${f.message}`);
          t.deepEqual([...f.fieldViolations].sort(), [...bad.fieldViolations].sort(), `${bad.title}: ${f.message}`);
          if (bad.message) t.regex(f.message, bad.message, bad.title);
          if (bad.reason) t.is(f.reason, bad.reason, `${bad.title}: ${f.message}`);
        }
        // Wrong credentials (or settings the target refuses to serve), dry run: the cloud's refusal comes back.
        const fixField = target.fixCredentialField ?? "";
        const refused = target.refusedAccess ?? {
          config: (x: TargetWorld) => x.config(x.wrongCredentials),
          fixMask: `${target.configField}.${fixField}`,
          fix: (x: TargetWorld) => x.config({ [fixField]: x.credentials[fixField]! }),
        };
        if (!target.refusedAccess && !target.fixCredentialField) throw new Error("the descriptor names fixCredentialField or refusedAccess");
        f = await fail(k.keystores, k.keystores.createKeystore, create("x5", keystoreOf(target, refused.config(w)), true));
        t.is(f.code, grpc.status.FAILED_PRECONDITION, f.message);
        t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
        t.is(f.metadata.cloudErrorCode, target.wrongCredentialsCloudCode);
        // The good settings pass the dry run.
        const dry = (await rpc(k.keystores, k.keystores.createKeystore, create("x6", keystoreOf(target, w.config(w.credentials)), true))).keystore!;
        seen(dry);
        t.regex(dry.lastTestResult, target.noCredentialCheck ? /answered/ : /accepted the credentials/);
        t.deepEqual(await snapshot(), before, "no rejected or dry-run create stored anything");

        // An algorithm the cloud cannot import.
        await d.createKey("unsupported", target.unsupported.algorithm);
        f = await fail(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/unsupported`, keystore: `vaults/${VAULT}/keystores/${KS}`, requestId: "" });
        t.is(f.code, grpc.status.FAILED_PRECONDITION);
        t.is(f.reason, "ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE");
        t.regex(f.message, target.unsupported.message);
        t.deepEqual(await snapshot(), before);

        // Stored credentials the cloud refuses: TestKeystore says so; a push is refused and rolled back.
        await d.createKeystore(target, "wrong", keystoreOf(target, refused.config(w)));
        const tested = await rpc(k.keystores, k.keystores.testKeystore, { name: `vaults/${VAULT}/keystores/wrong` });
        seen(tested);
        t.false(tested.ok);
        t.is(tested.cloudErrorCode, target.wrongCredentialsCloudCode);
        await d.createKey("good", target.algorithm);
        const before2 = await snapshot();
        f = await fail(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/good`, keystore: `vaults/${VAULT}/keystores/wrong`, requestId: "" });
        t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
        t.deepEqual(await snapshot(), before2, "the rejected push left no distribution and no cloud key");
        // Fixing the credentials (one field of the config) makes the same push work.
        const fixed = (await rpc(k.keystores, k.keystores.updateKeystore, { keystore: { ...keystoreOf(target, refused.fix(w)), name: `vaults/${VAULT}/keystores/wrong` }, updateMask: [refused.fixMask], validateOnly: false })).keystore!;
        seen(fixed);
        t.true((await rpc(k.keystores, k.keystores.testKeystore, { name: `vaults/${VAULT}/keystores/wrong` })).ok);
        const pushed = await d.distribute("good", "wrong");
        seen(pushed);
        t.is(pushed.syncState, SyncState.SYNC_STATE_IN_SYNC, pushed.lastError);
        const cloud = (await w.cloudKeys()).find((x) => x.id === pushed.cloudKeyId);
        t.is(cloud?.kcv, (await rpc(c.keys, c.keys.getKey, { name: `vaults/${VAULT}/keys/good` })).key!.versions[0]!.kcv);
        f = await fail(k.keystores, k.keystores.deleteKeystore, { name: `vaults/${VAULT}/keystores/wrong`, etag: "" });
        t.is(f.reason, "KEYSTORE_IN_USE");

        // Caller credentials: nothing stored; a call without them is refused, with them it works.
        let md = new grpc.Metadata();
        let watched: Distribution = pushed;
        if (target.noCredentialCheck) t.log(`caller credentials not shown: ${target.noCredentialCheck}`);
        else {
          const callerKs = await d.createKeystore(target, "caller", keystoreOf(target, w.config({}), { credentialSource: CredentialSource.CREDENTIAL_SOURCE_CALLER }));
          seen(callerKs);
          t.false(callerKs.hasCredentials);
          await d.createKey("bycaller", target.algorithm);
          f = await fail(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/bycaller`, keystore: `vaults/${VAULT}/keystores/caller`, requestId: "" });
          t.is(f.reason, "CLOUD_CREDENTIALS_REQUIRED");
          md = new grpc.Metadata();
          md.set("x-mcko-cloud-credentials", Buffer.from(JSON.stringify(w.credentials)).toString("base64"));
          watched = (await rpcWith(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/bycaller`, keystore: `vaults/${VAULT}/keystores/caller`, requestId: "" }, md)).distribution!;
          seen(watched);
          t.is(watched.syncState, SyncState.SYNC_STATE_IN_SYNC, watched.lastError);
        }
        const live = (await rpcWith(k.distributions, k.distributions.getDistribution, { name: watched.name, readLive: true }, md)).distribution!;
        t.deepEqual(live.drift, []);
        // Drift seen live: disabled behind the vault's back → DRIFTED with the reason; SyncDistribution repairs it.
        await w.disableOutOfBand(watched.cloudKeyId);
        const drifted = (await rpcWith(k.distributions, k.distributions.getDistribution, { name: watched.name, readLive: true }, md)).distribution!;
        t.is(drifted.syncState, SyncState.SYNC_STATE_DRIFTED);
        t.true(drifted.drift.some((x) => /DISABLED, the vault wants ENABLED/.test(x)), drifted.drift.join("; "));
        await rpcWith(k.distributions, k.distributions.syncDistribution, { name: watched.name }, md);
        t.is((await w.cloudKeys()).find((x) => x.id === watched.cloudKeyId)?.state, "ENABLED");

        // A vault that still has a keystore cannot be deleted; after removing the keystore it can.
        await d.createVault("ksonly");
        await rpc(k.keystores, k.keystores.createKeystore, { parent: "vaults/ksonly", keystoreId: KS, keystore: keystoreOf(target, w.config(w.credentials)), requestId: "", validateOnly: false });
        f = await fail(c.vaults, c.vaults.deleteVault, { name: "vaults/ksonly", etag: "" });
        t.is(f.reason, "VAULT_NOT_EMPTY");
        await rpc(k.keystores, k.keystores.deleteKeystore, { name: `vaults/ksonly/keystores/${KS}`, etag: "" });
        await rpc(c.vaults, c.vaults.deleteVault, { name: "vaults/ksonly", etag: "" });
        await d.stop();
        logs = d.process.logs();
      },
      true,
    );
    try {
      // Canary: the credentials appear nowhere the daemon wrote or answered.
      const haystacks = filesUnder(home.dir).map((file) => ({ where: file, text: readFileSync(file).toString("latin1") }));
      haystacks.push({ where: "daemon log", text: logs }, { where: "responses and errors", text: responses.join("\n") });
      t.true(logs.includes('"level":'), "the daemon's log was captured (it runs at trace)");
      if (target.noCredentialCheck) t.log(`credential canary not shown: ${target.noCredentialCheck}`);
      else t.true(needles.length >= 6);
      let hits = 0;
      for (const n of needles) {
        for (const h of haystacks) {
          if (h.text.includes(n)) {
            hits++;
            t.log(`credential found in ${h.where}`);
          }
        }
      }
      t.is(hits, 0);
      t.true(readFileSync(home.journalFile, "utf8").includes("KeystoreService/CreateKeystore"), "keystore changes are audited");
    } finally {
      home.cleanup();
    }
  });

  if (!target.randomCrash) test.serial(`${target.title}: SIGKILL between each pair of cloud calls of a push (${target.pushCalls.join(" → ")}) and after each lost answer: after restart the push completes, one cloud key, no duplicate, nothing untracked`, async (t) => {
    t.timeout(600_000);
    await withWorld(target, {}, async (w, d) => {
      const fh = hooks(w);
      await d.createVault();
      await d.createKeystore(target, KS, keystoreOf(target, w.config(w.credentials)));
      // A first push lays down the target's infrastructure; then a push on a fresh daemon shows the calls of a push.
      await d.createKey("warmup", target.algorithm);
      t.is((await d.distribute("warmup", KS)).syncState, SyncState.SYNC_STATE_IN_SYNC);
      await d.restart();
      await d.createKey("probe", target.algorithm);
      fh.clearCalls();
      t.is((await d.distribute("probe", KS)).syncState, SyncState.SYNC_STATE_IN_SYNC);
      t.deepEqual(
        fh.calls().map((x) => x.operation).slice(0, target.pushCalls.length),
        [...target.pushCalls],
        "the descriptor names the cloud calls of a push",
      );

      const scenarios: Array<{ id: string; title: string; at: number; afterCommit: boolean; importDone: boolean; created: boolean }> = [];
      const firstMutating = target.pushCalls.findIndex((x) => target.mutatingPushCalls.includes(x));
      const importAt = target.pushCalls.indexOf(target.importCall);
      for (let i = 1; i < target.pushCalls.length; i++) {
        // Call i is held open (a timeout that never takes effect): the daemon dies after call i-1 answered.
        scenarios.push({ id: `before${i}`, title: `after ${target.pushCalls[i - 1]}, before ${target.pushCalls[i]}`, at: i, afterCommit: false, importDone: importAt < i, created: firstMutating >= 0 && firstMutating < i });
      }
      target.pushCalls.forEach((call, i) => {
        if (target.mutatingPushCalls.includes(call)) scenarios.push({ id: `lost${i}`, title: `${call} took effect, its answer lost`, at: i, afterCommit: true, importDone: importAt <= i, created: true });
      });

      for (const s of scenarios) {
        await d.restart();
        const key = await d.createKey(s.id, target.algorithm);
        const requestId = randomUUID();
        fh.clearCalls();
        const arm = () => fh.failNext({ operation: target.pushCalls[s.at]!, kind: "timeout", afterCommit: s.afterCommit });
        if (s.at === 0) arm();
        const push = d.distribute(s.id, KS, requestId).then(
          () => "answered",
          () => "failed",
        );
        // Walk the push call by call; the fault is armed as call at-1 is logged, before its answer leaves the emulator.
        let seq = 0;
        for (let j = 0; j < s.at; j++) {
          seq = (await fh.waitForCall((r) => r.seq > seq && r.operation === target.pushCalls[j])).seq;
          if (j === s.at - 1) arm();
        }
        await fh.waitForCall((r) => r.seq > seq && r.operation === target.pushCalls[s.at] && r.fault === "timeout");
        await d.kill();
        t.is(await push, "failed", `${s.title}: the push never answered`);
        fh.clearFaults();
        const made = await tagged(w, requestId);
        t.true(made.length <= 1, `${s.title}: at most one cloud key before the restart`);
        if (s.created) t.is(made.length, 1, `${s.title}: the cloud key was made before the crash`);
        if (s.importDone) t.is(made[0]?.kcv, key.versions[0]!.kcv, `${s.title}: the material was in before the crash`);
        else t.true(made.every((x) => x.state === "PENDING_IMPORT"), `${s.title}: no material before the crash`);

        await d.start();
        const dist = await d.until(s.id, KS, (x) => x.syncState !== SyncState.SYNC_STATE_PENDING);
        t.is(dist.syncState, SyncState.SYNC_STATE_IN_SYNC, `${s.title}: ${dist.lastError}`);
        t.is(dist.observedState, CloudKeyState.CLOUD_KEY_STATE_ENABLED);
        t.is(dist.requestId, requestId);
        const after = await tagged(w, requestId);
        t.is(after.length, 1, `${s.title}: no duplicate cloud key`);
        t.is(after[0]!.id, dist.cloudKeyId, `${s.title}: the distribution tracks the key made before the crash`);
        t.is(after[0]!.state, "ENABLED");
        t.is(after[0]!.kcv, key.versions[0]!.kcv, `${s.title}: the vault's material arrived`);
        t.is(after[0]!.materialCount, 1, `${s.title}: imported once`);
        t.true(after[0]!.names.includes(dist.cloudAlias), `${s.title}: the name ${dist.cloudAlias} points at it`);
        // The retried request gets the first result, not a second push.
        t.is((await d.distribute(s.id, KS, requestId)).cloudKeyId, dist.cloudKeyId);
      }
      const ds = await d.list(KS);
      t.is(ds.length, scenarios.length + 2);
      t.deepEqual((await w.cloudKeys()).map((x) => x.id).sort(), ds.map((x) => x.cloudKeyId).sort(), "no untracked cloud key anywhere");
    });
  });

  if (target.randomCrash) {
    const rc = target.randomCrash;
    test.serial(`${target.title}: SIGKILL at ${rc.rounds} random moments during streams of pushes (no call log shows a push's progress from outside): after restart every acknowledged distribution is there exactly once, no key without its distribution, no duplicate`, async (t) => {
      t.timeout(600_000);
      await withWorld(target, {}, async (w, d) => {
        const rand = seeded(rc.seed);
        await d.createVault();
        await d.createKeystore(target, KS, keystoreOf(target, w.config(w.credentials), { maxConcurrency: 4 }));
        // A first push lays down the target's infrastructure (its transport key) and shows how long a push takes.
        await d.createKey("warmup", target.algorithm);
        let started = Date.now();
        t.is((await d.distribute("warmup", KS)).syncState, SyncState.SYNC_STATE_IN_SYNC);
        t.log(`the first push (it lays down the target's infrastructure): ${Date.now() - started} ms`);
        const kcvs = new Map<string, string>();
        const pushes: Array<{ key: string; requestId: string; acked: boolean }> = [];
        // Calibration: a stream of pushes as the rounds send, not killed, shows how long a stream lasts here; the
        // kills are spread over that time (bounded by maxDelayMs), so they land inside the stream on any machine.
        const stream = async (round: string) => {
          const batch: Array<{ key: string; requestId: string; acked: boolean }> = [];
          for (let i = 0; i < rc.pushesPerRound; i++) {
            const id = `${round}p${i}`;
            const key = await d.createKey(id, target.algorithm);
            kcvs.set(key.name, key.versions[0]!.kcv);
            batch.push({ key: id, requestId: randomUUID(), acked: false });
          }
          pushes.push(...batch);
          // The pushes start one after another, so a kill lands at a different point of a different push each round.
          const running = Promise.all(
            batch.map(async (p, i) => {
              await new Promise((r) => setTimeout(r, i * 5));
              const dist = await d.distribute(p.key, KS, p.requestId).catch(() => undefined);
              if (dist?.syncState === SyncState.SYNC_STATE_IN_SYNC) p.acked = true;
            }),
          );
          return { batch, running };
        };
        started = Date.now();
        await (await stream("cal")).running;
        const streamMs = Date.now() - started;
        const window = Math.min(rc.maxDelayMs, Math.max(20, Math.round(streamMs * 1.2)));
        t.log(`a stream of ${rc.pushesPerRound} pushes took ${streamMs} ms; kills fall in the first ${window} ms of each stream`);
        let killedMidPush = 0;
        let halfDone = 0;
        for (let round = 0; round < rc.rounds; round++) {
          if (!d.running) await d.start();
          const { batch, running } = await stream(`r${round}`);
          await new Promise((r) => setTimeout(r, Math.floor(rand() * window)));
          await d.kill();
          await running;
          const unacked = batch.filter((p) => !p.acked).length;
          if (unacked > 0 && unacked < batch.length) killedMidPush++;
          // What the crash left behind, seen from outside before the daemon comes back.
          halfDone += (await w.cloudKeys()).filter((x) => x.state === "PENDING_IMPORT").length;
        }
        t.log(`${pushes.filter((p) => p.acked).length} of ${pushes.length} pushes acknowledged before their round's kill; ${killedMidPush} rounds were killed with some pushes of the stream answered and some not; ${halfDone} half-made keys (no material yet) in the inspections after the kills (summed over rounds; one left unrepaired for a while counts in each)`);
        t.true(pushes.some((p) => !p.acked), "some kills landed before a push was answered");

        // Restart; the daemon resumes what it recorded, and a client retries what was never answered (same request id).
        await d.start();
        for (const p of pushes) {
          if (p.acked) continue;
          const dist = await d.distribute(p.key, KS, p.requestId, 60_000);
          t.not(dist.syncState, SyncState.SYNC_STATE_FAILED, `${p.key}: ${dist.lastError}`);
        }
        const ds = await d.list(KS);
        for (const p of pushes) await d.until(p.key, KS, (x) => x.syncState === SyncState.SYNC_STATE_IN_SYNC);
        const settled = await d.list(KS);
        t.is(settled.length, pushes.length + 1, "every push has its distribution, and only one");
        t.is(ds.length, settled.length);
        const keys = await w.cloudKeys();
        t.deepEqual(keys.map((x) => x.id).sort(), settled.map((x) => x.cloudKeyId).sort(), "no key in the target without its distribution, none twice");
        for (const p of pushes) {
          const x = settled.find((y) => y.name === `vaults/${VAULT}/keys/${p.key}/distributions/${KS}`)!;
          t.is(x.requestId, p.requestId, `${p.key}: the distribution is the push's own`);
          const view = keys.filter((v) => v.id === x.cloudKeyId);
          t.is(view.length, 1, `${p.key}: exactly one key`);
          t.is(view[0]?.state, "ENABLED", p.key);
          t.is(view[0]?.materialCount, 1, `${p.key}: imported once`);
          t.is(view[0]?.kcv, kcvs.get(`vaults/${VAULT}/keys/${p.key}`), `${p.key}: the vault's material`);
          t.is(view[0]?.tags["mcko:request-id"], p.requestId, `${p.key}: tagged with its request id`);
          t.true(view[0]?.names.includes(x.cloudAlias), `${p.key}: the name ${x.cloudAlias} points at it`);
        }
      });
    });
  }

  if (target.noFaults) {
    test.serial(`${target.title}: 200 distributions under 30% throttling and 5% 5xx — not applicable: ${target.noFaults}`, (t) => {
      t.log(`not run: ${target.noFaults}`);
      t.pass("the target declares it has no throttling and no 5xx to inject");
    });
  } else test.serial(`${target.title}: 200 distributions converge to IN_SYNC under 30% throttling and 5% 5xx, with one cloud key, one material and one name each and the vault's KCVs`, async (t) => {
    t.timeout(600_000);
    const COUNT = 200;
    await withWorld(target, { cloudAttemptTimeoutMs: 5000 }, async (w, d) => {
      const fh = hooks(w);
      await d.createVault();
      await d.createKeystore(target, KS, keystoreOf(target, w.config(w.credentials), { maxConcurrency: 8 }));
      const kcvs = new Map<string, string>();
      await inBatches(COUNT, 16, async (i) => {
        const key = await d.createKey(`k${i}`, target.algorithm);
        kcvs.set(key.name, key.versions[0]!.kcv);
      });
      fh.clearCalls();
      fh.setFaults({ throttleRate: 0.3, serverErrorRate: 0.05, seed: 4 });
      // A push that runs out of its deadline leaves the distribution for the reconciler; the call itself may fail.
      const requestIds = Array.from({ length: COUNT }, () => randomUUID());
      let failedCalls = 0;
      await inBatches(COUNT, 16, async (i) => {
        await d.distribute(`k${i}`, KS, requestIds[i]!, 60_000).catch(() => failedCalls++);
      });
      const faulted = fh.calls().filter((r) => r.fault !== undefined);
      t.true(faulted.some((r) => r.fault === "throttle") && faulted.some((r) => r.fault === "server-error"), "faults were injected");
      // Converge: a create the daemon never recorded is sent again with the same request id.
      let ds = await d.list(KS);
      while (ds.length < COUNT || ds.some((x) => x.syncState !== SyncState.SYNC_STATE_IN_SYNC)) {
        t.false(ds.some((x) => x.syncState === SyncState.SYNC_STATE_FAILED), ds.find((x) => x.syncState === SyncState.SYNC_STATE_FAILED)?.lastError);
        if (ds.some((x) => x.syncState === SyncState.SYNC_STATE_FAILED)) return;
        if (ds.length < COUNT) {
          const have = new Set(ds.map((x) => x.name));
          await inBatches(COUNT, 16, async (i) => {
            if (!have.has(`vaults/${VAULT}/keys/k${i}/distributions/${KS}`)) await d.distribute(`k${i}`, KS, requestIds[i]!, 60_000).catch(() => undefined);
          });
        }
        await new Promise((r) => setTimeout(r, 50));
        ds = await d.list(KS);
      }
      t.log(`${failedCalls} CreateDistribution calls ran out of their deadline; ${faulted.length} faults injected`);
      fh.clearFaults();

      t.is(ds.length, COUNT);
      const keys = await w.cloudKeys();
      t.is(keys.length, COUNT, "no duplicate cloud keys");
      const byOwner = new Map<string, string[]>();
      for (const v of keys) {
        const owner = v.tags["mcko:key"];
        if (owner) byOwner.set(owner, [...(byOwner.get(owner) ?? []), v.id]);
      }
      for (const x of ds) {
        const owner = x.name.replace(/\/distributions\/[^/]+$/, "");
        t.deepEqual(byOwner.get(owner), [x.cloudKeyId], `${owner}: exactly one cloud key`);
        const view = keys.find((v) => v.id === x.cloudKeyId)!;
        t.is(view.state, "ENABLED");
        t.is(view.materialCount, 1, `${owner}: imported once`);
        t.deepEqual(view.names, [x.cloudAlias], `${owner}: one name`);
        t.is(view.kcv, kcvs.get(owner), `${owner}: the cloud's material has the vault's KCV`);
      }
    });
  });

  test.serial(`${target.title}: a waiting distribution goes out on activation; throttling, timeouts and lost answers on every call of a push are retried without a duplicate; a lost cloud key is re-pushed; delete schedules deletion; pushes are audited`, async (t) => {
    t.timeout(300_000);
    await withWorld(target, { cloudAttemptTimeoutMs: target.cloudAttemptTimeoutMs ?? 2000, cloudDeadlineMs: 60_000 }, async (w, d) => {
      const { c, k } = d;
      await d.createVault();
      await d.createKeystore(target, KS, keystoreOf(target, w.config(w.credentials), { deletionWindowDays: target.deletionWindowDays ?? 0 }));

      // PRE_ACTIVATION: recorded, not pushed; activation pushes it.
      const pre = await d.createKey("later", target.algorithm, KeyState.KEY_STATE_PRE_ACTIVATION);
      const waiting = await d.distribute("later", KS);
      t.is(waiting.syncState, SyncState.SYNC_STATE_PENDING);
      t.is(waiting.cloudKeyId, "");
      t.is((await w.cloudKeys()).length, 0, "nothing in the cloud while the key waits");
      await rpc(c.keys, c.keys.setKeyState, { name: pre.name, state: KeyState.KEY_STATE_ACTIVE, etag: "", reason: "go" });
      const active = await d.until("later", KS, (x) => x.syncState === SyncState.SYNC_STATE_IN_SYNC);
      t.is((await w.cloudKeys()).find((x) => x.id === active.cloudKeyId)?.kcv, pre.versions[0]!.kcv);
      t.is((await w.cloudKeys()).find((x) => x.id === active.cloudKeyId)?.state, "ENABLED");

      // Every call of a push meets throttling; every cloud-changing call also a timeout before it takes effect and a
      // lost answer after it did. All are retried, and nothing is made twice.
      let pushed: Distribution;
      const flaky = await d.createKey("flaky", target.algorithm);
      if (!w.faults) {
        t.log(`no scripted faults on the calls of a push: ${target.noFaults ?? "the target has no fault injection"}`);
        pushed = await d.distribute("flaky", KS);
        t.is(pushed.syncState, SyncState.SYNC_STATE_IN_SYNC, pushed.lastError);
      } else {
        const fh = w.faults;
        // The calls of a push on this (warm) daemon, from a clean push.
        await d.createKey("clean", target.algorithm);
        fh.clearCalls();
        t.is((await d.distribute("clean", KS)).syncState, SyncState.SYNC_STATE_IN_SYNC);
        const warm = [...new Set(fh.calls().map((r) => r.operation))].filter((x) => target.pushCalls.includes(x));
        t.true(target.mutatingPushCalls.every((x) => warm.includes(x)), warm.join(", "));
        let scripted = 0;
        for (const call of warm) {
          // A lost answer comes last per call: the retry after it may find the result instead of calling again.
          const faults: ScriptedFault[] = [{ operation: call, kind: "throttle" }];
          if (call === warm[0]) faults.push({ operation: call, kind: "server-error" });
          if (target.mutatingPushCalls.includes(call)) faults.push({ operation: call, kind: "timeout" }, { operation: call, kind: "server-error", afterCommit: true });
          for (const f of faults) fh.failNext(f);
          scripted += faults.length;
        }
        fh.clearCalls();
        pushed = await d.distribute("flaky", KS);
        t.is(pushed.syncState, SyncState.SYNC_STATE_IN_SYNC, pushed.lastError);
        t.is(fh.calls().filter((x) => x.fault).length, scripted, "every injected fault was met and retried");
        fh.clearFaults();
      }
      const flakyKeys = (await w.cloudKeys()).filter((x) => x.tags["mcko:key"] === flaky.name);
      t.is(flakyKeys.length, 1, "retries made no duplicate");
      t.is(flakyKeys[0]!.materialCount, 1, "the material was imported once");
      t.is(flakyKeys[0]!.kcv, flaky.versions[0]!.kcv);

      // A cloud that lost the key gets it back from the vault. (SyncDistribution first: it queues behind any
      // background check of the fresh distribution, which would otherwise repair the loss before the live read.)
      const settled = (await rpc(k.distributions, k.distributions.syncDistribution, { name: pushed.name })).distribution!;
      t.is(settled.cloudKeyId, pushed.cloudKeyId);
      t.deepEqual(settled.versions.map((v) => v.cloudVersionId), pushed.versions.map((v) => v.cloudVersionId), "a sync of an in-sync distribution pushes nothing");
      await w.deleteOutOfBand(pushed.cloudKeyId);
      const live = await d.get("flaky", KS, true);
      t.is(live.syncState, SyncState.SYNC_STATE_DRIFTED);
      t.true(live.drift.some((x) => x.includes("is missing")), live.drift.join("; "));
      const repaired = (await rpc(k.distributions, k.distributions.syncDistribution, { name: pushed.name })).distribution!;
      t.is(repaired.syncState, SyncState.SYNC_STATE_IN_SYNC, repaired.lastError);
      if (target.recreatedKeyGetsNewId) t.not(repaired.cloudKeyId, pushed.cloudKeyId);
      const back = (await w.cloudKeys()).find((x) => x.id === repaired.cloudKeyId);
      t.is(back?.kcv, flaky.versions[0]!.kcv);
      t.true(back?.names.includes(repaired.cloudAlias));

      // Delete: deletion scheduled (at the keystore's window where the cloud takes one), distribution gone.
      await rpc(k.distributions, k.distributions.deleteDistribution, { name: repaired.name });
      const gone = (await w.cloudKeys()).find((x) => x.id === repaired.cloudKeyId);
      if (target.deletionRemoves) t.is(gone, undefined, "deleted at once (the target has no deletion window)");
      else t.is(gone?.state, "DELETION_SCHEDULED");
      if (target.deletionWindowDays !== undefined) t.is(gone?.deletionWindowDays, target.deletionWindowDays);
      t.is((await rpcError(k.distributions, k.distributions.getDistribution, { name: repaired.name, readLive: false })).code, grpc.status.NOT_FOUND);

      // A key destroyed and deleted at once: its cloud key still gets its deletion scheduled, the distribution goes.
      const brief = await d.createKey("brief", target.algorithm);
      const briefDist = await d.distribute("brief", KS);
      await rpc(c.keys, c.keys.setKeyState, { name: brief.name, state: KeyState.KEY_STATE_DEACTIVATED, etag: "", reason: "t" });
      await rpc(c.keys, c.keys.setKeyState, { name: brief.name, state: KeyState.KEY_STATE_DESTROYED, etag: "", reason: "t" });
      await rpc(c.keys, c.keys.deleteKey, { name: brief.name, etag: "" });
      if (w.faults) await w.faults.waitForCall((x) => x.operation === target.deletionCall && x.target !== undefined && x.target.includes(briefDist.cloudKeyId) && x.committed);
      else {
        const done = (x: CloudKeyInfo | undefined) => (target.deletionRemoves ? x === undefined : x?.state === "DELETION_SCHEDULED");
        while (!done((await w.cloudKeys()).find((x) => x.id === briefDist.cloudKeyId))) await new Promise((r) => setTimeout(r, 50));
      }
      const briefGone = (await w.cloudKeys()).find((x) => x.id === briefDist.cloudKeyId);
      if (target.deletionRemoves) t.is(briefGone, undefined);
      else t.is(briefGone?.state, "DELETION_SCHEDULED");
      for (;;) {
        if (!(await d.list()).some((x) => x.name === briefDist.name)) break;
        await new Promise((r) => setTimeout(r, 20));
      }

      // Audit: the push on activation is the daemon's own, with its request id and the HSM's software step.
      const journal = readFileSync(d.home.journalFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { method: string; resource: string; details: Record<string, string> });
      const pushes = journal.filter((e) => e.resource === active.name && e.details.op === "push");
      t.is(pushes.length, 1);
      t.is(pushes[0]!.details.softwareStep, active.softwareStep, "the event records where the HSM ran the RSA step of the wrap");
      t.true(["none", "rsa-over-ephemeral-key", "rsa-over-material"].includes(active.softwareStep));
      t.is(pushes[0]!.details.requestId, active.requestId);
      t.is(pushes[0]!.method, "system/distribution", "the push on activation is the daemon's own");
      t.true(journal.some((e) => e.resource === repaired.name && e.method === "/mcko.v1.DistributionService/DeleteDistribution"));
    });
  });
}
