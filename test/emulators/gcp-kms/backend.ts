// State and RPC semantics of the Cloud KMS emulator, independent of gRPC wiring. Every method takes the request
// as proto-loader decodes it (keepCase, enums and longs as strings) and returns the response object, or throws
// GcpError with the canonical status code and a message shaped like Cloud KMS's.
import crypto, { type KeyObject } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { BoundedLog, EmulatorClock, type CapturedImport } from "../common/records.js";
import { ALGORITHMS, IMPORT_METHODS, isImportMethod, type AlgorithmSpec, type ImportMethod } from "./algorithms.js";
import {
  asymmetricSign, ciphertextVersion, crc32c, digestLength, generateMaterial, kcvOf, parseMaterial, symmetricDecrypt,
  symmetricEncrypt, unwrapImport, type KcvMethod, type Material,
} from "./crypto.js";

export class GcpError extends Error {
  constructor(readonly code: status, message: string) {
    super(message);
    this.name = "GcpError";
  }
}

const notFound = (kind: string, name: string) => new GcpError(status.NOT_FOUND, `${kind} ${name} not found.`);
const invalid = (msg: string) => new GcpError(status.INVALID_ARGUMENT, msg);
const precondition = (msg: string) => new GcpError(status.FAILED_PRECONDITION, msg);

// ---- proto shapes the emulator reads (only the fields it uses) --------------------------------------------
export interface Int64Value { value: string | number }
export interface ProtoTimestamp { seconds: string | number; nanos: number }
type Bytes = Buffer;
export interface ProtoCryptoKey {
  name?: string; purpose?: string; labels?: Record<string, string>; import_only?: boolean;
  version_template?: { protection_level?: string; algorithm?: string } | null;
  destroy_scheduled_duration?: ProtoTimestamp | null; rotation_period?: ProtoTimestamp | null;
  next_rotation_time?: ProtoTimestamp | null;
}
export interface Req {
  name?: string; parent?: string; key_ring_id?: string; crypto_key_id?: string; import_job_id?: string;
  crypto_key?: ProtoCryptoKey | null; skip_initial_version_creation?: boolean;
  import_job?: string | { import_method?: string; protection_level?: string } | null;
  crypto_key_version?: string | { name?: string; state?: string } | null;
  algorithm?: string; wrapped_key?: Bytes; rsa_aes_wrapped_key?: Bytes; update_mask?: { paths?: string[] } | null;
  crypto_key_version_id?: string; page_size?: number; page_token?: string; filter?: string;
  plaintext?: Bytes; ciphertext?: Bytes; additional_authenticated_data?: Bytes; data?: Bytes; mac?: Bytes;
  digest?: { sha256?: Bytes | null; sha384?: Bytes | null; sha512?: Bytes | null; digest?: string } | null;
  public_key_format?: string;
  plaintext_crc32c?: Int64Value | null; ciphertext_crc32c?: Int64Value | null;
  additional_authenticated_data_crc32c?: Int64Value | null; data_crc32c?: Int64Value | null;
  digest_crc32c?: Int64Value | null; mac_crc32c?: Int64Value | null;
}
export type Res = Record<string, unknown>;

// ---- records -----------------------------------------------------------------------------------------------
interface VersionRec {
  id: number; name: string; state: string; algorithm: string; protectionLevel: string; createTime: Date;
  generateTime?: Date; importJob?: string; importTime?: Date; importFailureReason?: string;
  destroyTime?: Date; destroyEventTime?: Date; material?: Material; fingerprint?: string; imported: boolean;
}
interface CryptoKeyRec {
  name: string; purpose: string; createTime: Date; algorithm: string; protectionLevel: string;
  labels: Record<string, string>; importOnly: boolean; destroyScheduledMs: number; primaryId?: number;
  rotationPeriodMs?: number; nextRotationTime?: Date; versions: Map<number, VersionRec>; nextVersionId: number;
}
interface ImportJobRec {
  name: string; importMethod: ImportMethod; protectionLevel: string; createTime: Date; generateTime?: Date;
  expireTime: Date; expireEventTime?: Date; state: string; publicKeyPem?: string; privateKey?: KeyObject;
  privateKeyPem?: string; ready: Promise<void>;
}

// ---- admin-facing snapshots ----------------------------------------------------------------------------------
export interface GcpVersionState {
  name: string; id: number; state: string; algorithm: string; protectionLevel: string; createTime: string;
  imported: boolean; importJob?: string; importTime?: string; importFailureReason?: string; destroyTime?: string;
  destroyEventTime?: string; hasMaterial: boolean; kcv?: string; kcvMethod?: KcvMethod;
}
export interface GcpCryptoKeyState {
  name: string; purpose: string; primary?: string; algorithm: string; protectionLevel: string;
  labels: Record<string, string>; importOnly: boolean; destroyScheduledDurationSeconds: number; createTime: string;
  versions: GcpVersionState[];
}
export interface GcpImportJobState {
  name: string; importMethod: string; protectionLevel: string; state: string; createTime: string; expireTime: string;
  publicKeyPem?: string;
}
export interface GcpKmsState {
  now: string;
  keyRings: { name: string; createTime: string }[];
  cryptoKeys: GcpCryptoKeyState[];
  importJobs: GcpImportJobState[];
}
/**
 * One ImportCryptoKeyVersion as received (common CapturedImport: keyRef = CryptoKey name, version = the version
 * written, wrappingAlgorithm = the import job's ImportMethod, wrappingKeySpec = "RSA_3072" | "RSA_4096").
 */
export interface GcpCapturedImport extends CapturedImport {
  /** CryptoKeyVersionAlgorithm named in the request. */
  algorithm: string;
  importJob: string;
  /** Which request field carried the blob. */
  field: "wrapped_key" | "rsa_aes_wrapped_key";
}

export interface BackendOptions {
  /** Projects the caller may use; any other project gets PERMISSION_DENIED. Absent = every project. */
  projects?: readonly string[];
  /** Reuse one wrapping key pair per size across import jobs (fast tests); default false = fresh key per job. */
  reuseWrappingKeys?: boolean;
  /** How many imports to keep for inspection; default 100. */
  captureLimit?: number;
}

const ID_RE = /^[a-zA-Z0-9_-]{1,63}$/;
const LOCATION_RE = /^projects\/([^/]+)\/locations\/([^/]+)$/;
const KEY_RING_RE = /^(projects\/[^/]+\/locations\/[^/]+)\/keyRings\/([^/]+)$/;
const CRYPTO_KEY_RE = /^(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+)\/cryptoKeys\/([^/]+)$/;
const VERSION_RE = /^(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+)\/cryptoKeyVersions\/([^/]+)$/;
const IMPORT_JOB_RE = /^(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+)\/importJobs\/([^/]+)$/;

const DAY_MS = 86_400_000;
const IMPORT_JOB_LIFETIME_MS = 3 * DAY_MS;
const MAX_PAGE = 1000;
const MAX_PLAINTEXT = 64 * 1024;

const ts = (d: Date | undefined): ProtoTimestamp | null =>
  d ? { seconds: Math.floor(d.getTime() / 1000), nanos: (d.getTime() % 1000) * 1e6 } : null;
const durMs = (d: ProtoTimestamp | null | undefined): number | undefined =>
  d ? Number(d.seconds) * 1000 + Math.floor((d.nanos ?? 0) / 1e6) : undefined;
const iso = (d: Date | undefined): string | undefined => d?.toISOString();
const int64 = (n: number): Int64Value => ({ value: String(n) });
const fingerprint = (b: Buffer): string => crypto.createHash("sha256").update(b).digest("hex");

function checkCrc(field: string, dataField: string, data: Buffer, crc: Int64Value | null | undefined): boolean {
  if (crc === null || crc === undefined) return false;
  if (Number(crc.value) !== crc32c(data)) {
    throw invalid(`The checksum in field ${field} did not match the data in field ${dataField}.`);
  }
  return true;
}

export class GcpKmsBackend {
  readonly keyRings = new Map<string, { name: string; createTime: Date }>();
  readonly cryptoKeys = new Map<string, CryptoKeyRec>();
  readonly importJobs = new Map<string, ImportJobRec>();
  readonly imports: BoundedLog<GcpCapturedImport>;
  readonly clock = new EmulatorClock();
  readonly #wrappingKeys = new Map<number, Promise<crypto.KeyPairKeyObjectResult>>();

  constructor(private readonly opts: BackendOptions = {}) {
    this.imports = new BoundedLog<GcpCapturedImport>(opts.captureLimit ?? 100);
  }

  now(): Date {
    return new Date(this.clock.nowMs());
  }

  /** Forgets every resource and capture; import jobs still generating finish into the void. */
  reset(): void {
    this.keyRings.clear();
    this.cryptoKeys.clear();
    this.importJobs.clear();
    this.imports.clear();
    this.clock.reset();
  }

  /** PERMISSION_DENIED for projects outside the configured set, worded like IAM's denial. */
  authorize(resource: string | undefined, permission: string): void {
    const project = /^projects\/([^/]+)/.exec(resource ?? "")?.[1];
    if (project === undefined || !this.opts.projects || this.opts.projects.includes(project)) return;
    throw new GcpError(status.PERMISSION_DENIED, `Permission '${permission}' denied on resource '${resource}' (or it may not exist).`);
  }

  // ---- lookups -----------------------------------------------------------------------------------------------
  #keyRing(name: string | undefined) {
    if (!name || !KEY_RING_RE.test(name)) throw invalid(`Resource name '${name ?? ""}' is not a valid KeyRing name.`);
    const ring = this.keyRings.get(name);
    if (!ring) throw notFound("KeyRing", name);
    return ring;
  }

  #cryptoKey(name: string | undefined): CryptoKeyRec {
    if (!name || !CRYPTO_KEY_RE.test(name)) throw invalid(`Resource name '${name ?? ""}' is not a valid CryptoKey name.`);
    const key = this.cryptoKeys.get(name);
    if (!key) throw notFound("CryptoKey", name);
    for (const v of key.versions.values()) this.#refreshVersion(key, v);
    return key;
  }

  #version(name: string | undefined): { key: CryptoKeyRec; version: VersionRec } {
    const m = VERSION_RE.exec(name ?? "");
    if (!m || !name) throw invalid(`Resource name '${name ?? ""}' is not a valid CryptoKeyVersion name.`);
    const key = this.cryptoKeys.get(m[1] ?? "");
    const version = /^\d+$/.test(m[2] ?? "") ? key?.versions.get(Number(m[2])) : undefined;
    if (!key || !version) throw notFound("CryptoKeyVersion", name);
    this.#refreshVersion(key, version);
    return { key, version };
  }

  #importJob(name: string | undefined): ImportJobRec {
    if (!name || !IMPORT_JOB_RE.test(name)) throw invalid(`Resource name '${name ?? ""}' is not a valid ImportJob name.`);
    const job = this.importJobs.get(name);
    if (!job) throw notFound("ImportJob", name);
    this.#refreshJob(job);
    return job;
  }

  /** Time-driven transitions, applied lazily against the (adjustable) clock. */
  #refreshVersion(key: CryptoKeyRec, v: VersionRec): void {
    if (v.state === "DESTROY_SCHEDULED" && v.destroyTime && v.destroyTime <= this.now()) this.#destroyNow(key, v, v.destroyTime);
  }

  #destroyNow(_key: CryptoKeyRec, v: VersionRec, when: Date): void {
    v.state = "DESTROYED";
    v.material = undefined;
    v.destroyEventTime = when;
  }

  #refreshJob(job: ImportJobRec): void {
    if (job.state !== "EXPIRED" && job.expireTime <= this.now()) {
      job.state = "EXPIRED";
      job.expireEventTime = job.expireTime;
    }
  }

  #usable(v: VersionRec): Material {
    if (v.state !== "ENABLED" || !v.material) throw precondition(`${v.name} is not enabled, current state is: ${v.state}.`);
    return v.material;
  }

  // ---- proto renderers ---------------------------------------------------------------------------------------
  #versionProto(v: VersionRec): Res {
    return {
      name: v.name, state: v.state, protection_level: v.protectionLevel, algorithm: v.algorithm,
      create_time: ts(v.createTime), generate_time: ts(v.generateTime), destroy_time: ts(v.destroyTime),
      destroy_event_time: ts(v.destroyEventTime), import_job: v.importJob ?? "", import_time: ts(v.importTime),
      import_failure_reason: v.importFailureReason ?? "", reimport_eligible: v.imported,
    };
  }

  #keyProto(k: CryptoKeyRec): Res {
    const primary = k.primaryId !== undefined ? k.versions.get(k.primaryId) : undefined;
    const res: Res = {
      name: k.name, primary: primary ? this.#versionProto(primary) : null, purpose: k.purpose,
      create_time: ts(k.createTime), labels: { ...k.labels }, import_only: k.importOnly,
      version_template: { protection_level: k.protectionLevel, algorithm: k.algorithm },
      destroy_scheduled_duration: { seconds: Math.floor(k.destroyScheduledMs / 1000), nanos: 0 },
      next_rotation_time: ts(k.nextRotationTime),
    };
    if (k.rotationPeriodMs !== undefined) res.rotation_period = { seconds: Math.floor(k.rotationPeriodMs / 1000), nanos: 0 };
    return res;
  }

  #jobProto(j: ImportJobRec): Res {
    return {
      name: j.name, import_method: j.importMethod, protection_level: j.protectionLevel, create_time: ts(j.createTime),
      generate_time: ts(j.generateTime), expire_time: ts(j.expireTime), expire_event_time: ts(j.expireEventTime),
      state: j.state, public_key: j.state === "ACTIVE" && j.publicKeyPem ? { pem: j.publicKeyPem } : null,
    };
  }

  #page<T>(items: T[], req: Req): { items: T[]; next: string } {
    const size = req.page_size ?? 0;
    if (size < 0) throw invalid("page_size must be non-negative.");
    let offset = 0;
    if (req.page_token) {
      const m = /^offset:(\d+)$/.exec(Buffer.from(req.page_token, "base64").toString());
      if (!m) throw invalid("Invalid page_token.");
      offset = Number(m[1]);
    }
    const n = size === 0 || size > MAX_PAGE ? MAX_PAGE : size;
    const slice = items.slice(offset, offset + n);
    const next = offset + n < items.length ? Buffer.from(`offset:${offset + n}`).toString("base64") : "";
    return { items: slice, next };
  }

  // ---- key rings ---------------------------------------------------------------------------------------------
  CreateKeyRing(req: Req): Res {
    if (!LOCATION_RE.test(req.parent ?? "")) throw invalid(`Resource name '${req.parent ?? ""}' is not a valid location name.`);
    if (!ID_RE.test(req.key_ring_id ?? "")) throw invalid(`key_ring_id must match [a-zA-Z0-9_-]{1,63}.`);
    const name = `${req.parent}/keyRings/${req.key_ring_id}`;
    if (this.keyRings.has(name)) throw new GcpError(status.ALREADY_EXISTS, `KeyRing ${name} already exists.`);
    const ring = { name, createTime: this.now() };
    this.keyRings.set(name, ring);
    return { name, create_time: ts(ring.createTime) };
  }

  GetKeyRing(req: Req): Res {
    const ring = this.#keyRing(req.name);
    return { name: ring.name, create_time: ts(ring.createTime) };
  }

  ListKeyRings(req: Req): Res {
    if (!LOCATION_RE.test(req.parent ?? "")) throw invalid(`Resource name '${req.parent ?? ""}' is not a valid location name.`);
    const all = [...this.keyRings.values()].filter((r) => r.name.startsWith(`${req.parent}/keyRings/`));
    const { items, next } = this.#page(all, req);
    return { key_rings: items.map((r) => ({ name: r.name, create_time: ts(r.createTime) })), next_page_token: next, total_size: all.length };
  }

  // ---- crypto keys -------------------------------------------------------------------------------------------
  CreateCryptoKey(req: Req): Res {
    this.#keyRing(req.parent);
    if (!ID_RE.test(req.crypto_key_id ?? "")) throw invalid(`crypto_key_id must match [a-zA-Z0-9_-]{1,63}.`);
    const ck = req.crypto_key ?? {};
    const name = `${req.parent}/cryptoKeys/${req.crypto_key_id}`;
    if (this.cryptoKeys.has(name)) throw new GcpError(status.ALREADY_EXISTS, `CryptoKey ${name} already exists.`);
    const purpose = ck.purpose ?? "CRYPTO_KEY_PURPOSE_UNSPECIFIED";
    if (!["ENCRYPT_DECRYPT", "ASYMMETRIC_SIGN", "ASYMMETRIC_DECRYPT", "RAW_ENCRYPT_DECRYPT", "MAC", "AES_WRAPPING"].includes(purpose)) {
      throw invalid(`crypto_key.purpose ${purpose} is not supported.`);
    }
    let algorithm = ck.version_template?.algorithm ?? "CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED";
    if (algorithm === "CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED" && purpose === "ENCRYPT_DECRYPT") algorithm = "GOOGLE_SYMMETRIC_ENCRYPTION";
    const spec = ALGORITHMS[algorithm];
    if (!spec) throw invalid(`crypto_key.version_template.algorithm ${algorithm} is not supported.`);
    if (spec.purpose !== purpose) throw invalid(`Algorithm ${algorithm} is not compatible with CryptoKey purpose ${purpose}.`);
    let protectionLevel = ck.version_template?.protection_level ?? "PROTECTION_LEVEL_UNSPECIFIED";
    if (protectionLevel === "PROTECTION_LEVEL_UNSPECIFIED") protectionLevel = "SOFTWARE";
    if (protectionLevel !== "SOFTWARE" && protectionLevel !== "HSM") {
      throw invalid(`crypto_key.version_template.protection_level ${protectionLevel} is not supported by this emulator.`);
    }
    if (ck.import_only && !req.skip_initial_version_creation) {
      throw invalid("CryptoKeys with import_only set must be created with skip_initial_version_creation.");
    }
    const destroyMs = durMs(ck.destroy_scheduled_duration) ?? 30 * DAY_MS;
    if (destroyMs < DAY_MS || destroyMs > 120 * DAY_MS) {
      throw invalid("crypto_key.destroy_scheduled_duration must be between 24 hours and 120 days.");
    }
    const rotationPeriodMs = durMs(ck.rotation_period);
    if (rotationPeriodMs !== undefined && purpose !== "ENCRYPT_DECRYPT") {
      throw invalid("rotation_period can only be set for CryptoKeys with purpose ENCRYPT_DECRYPT.");
    }
    const nextRotationTime = durMs(ck.next_rotation_time);
    const key: CryptoKeyRec = {
      name, purpose, createTime: this.now(), algorithm, protectionLevel, labels: { ...(ck.labels ?? {}) },
      importOnly: ck.import_only ?? false, destroyScheduledMs: destroyMs, rotationPeriodMs,
      nextRotationTime: nextRotationTime !== undefined ? new Date(nextRotationTime) : undefined,
      versions: new Map(), nextVersionId: 1,
    };
    this.cryptoKeys.set(name, key);
    if (!req.skip_initial_version_creation) {
      const v = this.#generateVersion(key, spec);
      if (purpose === "ENCRYPT_DECRYPT") key.primaryId = v.id;
    }
    return this.#keyProto(key);
  }

  #generateVersion(key: CryptoKeyRec, spec: AlgorithmSpec): VersionRec {
    const material = parseMaterial(key.algorithm, generateMaterial(spec));
    if (typeof material === "string") throw new GcpError(status.INTERNAL, "Internal error encountered.");
    const id = key.nextVersionId++;
    const now = this.now();
    const v: VersionRec = {
      id, name: `${key.name}/cryptoKeyVersions/${id}`, state: "ENABLED", algorithm: key.algorithm,
      protectionLevel: key.protectionLevel, createTime: now, generateTime: now, material, imported: false,
      fingerprint: fingerprint(material.bytes),
    };
    key.versions.set(id, v);
    return v;
  }

  GetCryptoKey(req: Req): Res {
    return this.#keyProto(this.#cryptoKey(req.name));
  }

  ListCryptoKeys(req: Req): Res {
    this.#keyRing(req.parent);
    const all = [...this.cryptoKeys.values()].filter((k) => k.name.startsWith(`${req.parent}/cryptoKeys/`));
    const { items, next } = this.#page(all, req);
    return { crypto_keys: items.map((k) => this.#keyProto(this.#cryptoKey(k.name))), next_page_token: next, total_size: all.length };
  }

  UpdateCryptoKey(req: Req): Res {
    const ck = req.crypto_key ?? {};
    const key = this.#cryptoKey(ck.name);
    const paths = req.update_mask?.paths ?? [];
    if (paths.length === 0) throw invalid("The request must specify an update_mask.");
    for (const p of paths) {
      if (!["labels", "rotation_period", "next_rotation_time", "version_template.algorithm"].includes(p)) {
        throw invalid(`The update_mask path '${p}' is not supported for CryptoKey.`);
      }
    }
    for (const p of paths) {
      if (p === "labels") key.labels = { ...(ck.labels ?? {}) };
      if (p === "rotation_period") {
        if (key.purpose !== "ENCRYPT_DECRYPT") throw invalid("rotation_period can only be set for CryptoKeys with purpose ENCRYPT_DECRYPT.");
        key.rotationPeriodMs = durMs(ck.rotation_period);
      }
      if (p === "next_rotation_time") {
        const t = durMs(ck.next_rotation_time);
        key.nextRotationTime = t !== undefined ? new Date(t) : undefined;
      }
      if (p === "version_template.algorithm") {
        const alg = ck.version_template?.algorithm ?? "";
        if (ALGORITHMS[alg]?.purpose !== key.purpose) throw invalid(`Algorithm ${alg} is not compatible with CryptoKey purpose ${key.purpose}.`);
        key.algorithm = alg;
      }
    }
    return this.#keyProto(key);
  }

  UpdateCryptoKeyPrimaryVersion(req: Req): Res {
    const key = this.#cryptoKey(req.name);
    if (key.purpose !== "ENCRYPT_DECRYPT") throw precondition(`${key.name} has purpose ${key.purpose}; only ENCRYPT_DECRYPT keys have a primary version.`);
    const id = /^\d+$/.test(req.crypto_key_version_id ?? "") ? Number(req.crypto_key_version_id) : NaN;
    const v = key.versions.get(id);
    if (!v) throw notFound("CryptoKeyVersion", `${key.name}/cryptoKeyVersions/${req.crypto_key_version_id ?? ""}`);
    if (v.state !== "ENABLED") throw precondition(`${v.name} is not enabled, current state is: ${v.state}.`);
    key.primaryId = id;
    return this.#keyProto(key);
  }

  // ---- import jobs -------------------------------------------------------------------------------------------
  CreateImportJob(req: Req): Res {
    this.#keyRing(req.parent);
    if (!ID_RE.test(req.import_job_id ?? "")) throw invalid(`import_job_id must match [a-zA-Z0-9_-]{1,63}.`);
    const spec = typeof req.import_job === "object" && req.import_job ? req.import_job : {};
    const method = spec.import_method ?? "IMPORT_METHOD_UNSPECIFIED";
    if (!isImportMethod(method)) throw invalid(`import_job.import_method ${method} is not supported.`);
    const protectionLevel = spec.protection_level ?? "PROTECTION_LEVEL_UNSPECIFIED";
    if (protectionLevel !== "SOFTWARE" && protectionLevel !== "HSM") {
      throw invalid(`import_job.protection_level ${protectionLevel} is not supported.`);
    }
    const name = `${req.parent}/importJobs/${req.import_job_id}`;
    if (this.importJobs.has(name)) throw new GcpError(status.ALREADY_EXISTS, `ImportJob ${name} already exists.`);
    const createTime = this.now();
    const job: ImportJobRec = {
      name, importMethod: method, protectionLevel, createTime, expireTime: new Date(createTime.getTime() + IMPORT_JOB_LIFETIME_MS),
      state: "PENDING_GENERATION", ready: Promise.resolve(),
    };
    // The key pair is generated asynchronously, as Cloud KMS does; the job turns ACTIVE when it is ready.
    job.ready = this.#wrappingKeyPair(IMPORT_METHODS[method].bits).then((pair) => {
      job.privateKey = pair.privateKey;
      job.privateKeyPem = pair.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
      job.publicKeyPem = pair.publicKey.export({ format: "pem", type: "spki" }).toString();
      job.generateTime = this.now();
      if (job.state === "PENDING_GENERATION") job.state = "ACTIVE";
    });
    this.importJobs.set(name, job);
    return this.#jobProto(job);
  }

  #wrappingKeyPair(bits: number): Promise<crypto.KeyPairKeyObjectResult> {
    const generate = () =>
      new Promise<crypto.KeyPairKeyObjectResult>((resolve, reject) =>
        crypto.generateKeyPair("rsa", { modulusLength: bits }, (err, publicKey, privateKey) =>
          err ? reject(err) : resolve({ publicKey, privateKey })));
    if (!this.opts.reuseWrappingKeys) return generate();
    let p = this.#wrappingKeys.get(bits);
    if (!p) {
      p = generate();
      this.#wrappingKeys.set(bits, p);
    }
    return p;
  }

  /** Waits for a job's key generation, so a GetImportJob right after CreateImportJob already sees ACTIVE. */
  async GetImportJob(req: Req): Promise<Res> {
    const job = this.#importJob(req.name);
    await job.ready;
    this.#refreshJob(job);
    return this.#jobProto(job);
  }

  async ListImportJobs(req: Req): Promise<Res> {
    this.#keyRing(req.parent);
    const all = [...this.importJobs.values()].filter((j) => j.name.startsWith(`${req.parent}/importJobs/`));
    await Promise.all(all.map((j) => j.ready));
    all.forEach((j) => this.#refreshJob(j));
    const { items, next } = this.#page(all, req);
    return { import_jobs: items.map((j) => this.#jobProto(j)), next_page_token: next, total_size: all.length };
  }

  // ---- versions ----------------------------------------------------------------------------------------------
  ImportCryptoKeyVersion(req: Req): Res {
    const key = this.#cryptoKey(req.parent);
    const algorithm = req.algorithm ?? "CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED";
    const spec = ALGORITHMS[algorithm];
    if (!spec) throw invalid(`Algorithm ${algorithm} is not supported for import.`);
    if (spec.purpose !== key.purpose) throw invalid(`Algorithm ${algorithm} is not compatible with CryptoKey purpose ${key.purpose}.`);
    const jobName = typeof req.import_job === "string" ? req.import_job : "";
    if (!jobName) throw invalid("import_job is required.");
    const job = this.#importJob(jobName);
    if (job.state !== "ACTIVE" || !job.privateKey || !job.privateKeyPem) {
      throw precondition(`ImportJob ${job.name} is not active, current state is: ${job.state}.`);
    }
    if (job.protectionLevel !== key.protectionLevel) {
      throw precondition(`ImportJob ${job.name} has protection level ${job.protectionLevel}, but CryptoKey ${key.name} has protection level ${key.protectionLevel}.`);
    }
    const method = IMPORT_METHODS[job.importMethod];
    const useLegacy = (!req.wrapped_key || req.wrapped_key.length === 0) && !!req.rsa_aes_wrapped_key && req.rsa_aes_wrapped_key.length > 0;
    const wrapped = useLegacy ? req.rsa_aes_wrapped_key : req.wrapped_key;
    if (!wrapped || wrapped.length === 0) throw invalid("wrapped_key is required.");
    if (useLegacy && !method.rsaAes) throw invalid(`rsa_aes_wrapped_key cannot be used with import method ${job.importMethod}.`);

    let target: VersionRec | undefined;
    const targetName = typeof req.crypto_key_version === "string" ? req.crypto_key_version : "";
    if (targetName) {
      const m = VERSION_RE.exec(targetName);
      if (!m || m[1] !== key.name) throw invalid(`crypto_key_version ${targetName} is not a child of ${key.name}.`);
      target = key.versions.get(Number(m[2]));
      if (!target) throw notFound("CryptoKeyVersion", targetName);
      if (!target.imported) throw precondition(`${target.name} was not created by import and cannot be re-imported.`);
      if (target.state !== "DESTROYED" && target.state !== "IMPORT_FAILED") {
        throw precondition(`${target.name} must be in state DESTROYED or IMPORT_FAILED to be re-imported, current state is: ${target.state}.`);
      }
      if (target.algorithm !== algorithm) throw invalid(`Algorithm ${algorithm} does not match the algorithm ${target.algorithm} of ${target.name}.`);
    }

    const now = this.now();
    const v: VersionRec = target ?? (() => {
      const id = key.nextVersionId++;
      const rec: VersionRec = {
        id, name: `${key.name}/cryptoKeyVersions/${id}`, state: "PENDING_IMPORT", algorithm,
        protectionLevel: key.protectionLevel, createTime: now, imported: true,
      };
      key.versions.set(id, rec);
      return rec;
    })();
    v.importJob = job.name;
    v.importTime = now;
    let outcome: Material | string;
    try {
      outcome = parseMaterial(algorithm, unwrapImport(method, job.privateKey, wrapped));
    } catch {
      outcome = `Failed to unwrap the wrapped_key with ImportJob ${job.name} (import method ${job.importMethod}).`;
    }
    if (typeof outcome !== "string" && target?.fingerprint && target.fingerprint !== fingerprint(outcome.bytes)) {
      outcome = `Key material does not match the material originally imported into ${target.name}.`;
    }
    if (typeof outcome === "string") {
      v.state = "IMPORT_FAILED";
      v.importFailureReason = outcome;
      v.material = undefined;
    } else {
      v.state = "ENABLED";
      v.material = outcome;
      v.fingerprint = fingerprint(outcome.bytes);
      v.generateTime = now;
      v.importFailureReason = undefined;
      v.destroyTime = undefined;
      v.destroyEventTime = undefined;
    }
    const capture: Omit<GcpCapturedImport, "seq"> = {
      time: now.toISOString(), keyRef: key.name, version: v.name, wrappingAlgorithm: job.importMethod,
      wrappingKeySpec: `RSA_${method.bits}`, wrappedBlob: Buffer.from(wrapped), wrappingPrivateKeyPem: job.privateKeyPem,
      wrappingPublicKeyPem: job.publicKeyPem ?? "", accepted: typeof outcome !== "string", algorithm, importJob: job.name,
      field: useLegacy ? "rsa_aes_wrapped_key" : "wrapped_key",
    };
    if (typeof outcome === "string") capture.error = outcome;
    else capture.materialKcv = kcvOf(algorithm, outcome).kcv;
    this.imports.append(capture);
    return this.#versionProto(v);
  }

  CreateCryptoKeyVersion(req: Req): Res {
    const key = this.#cryptoKey(req.parent);
    if (key.importOnly) throw precondition(`${key.name} is import_only; new versions can only be imported.`);
    const spec = ALGORITHMS[key.algorithm];
    if (!spec) throw new GcpError(status.INTERNAL, "Internal error encountered.");
    return this.#versionProto(this.#generateVersion(key, spec));
  }

  GetCryptoKeyVersion(req: Req): Res {
    return this.#versionProto(this.#version(req.name).version);
  }

  ListCryptoKeyVersions(req: Req): Res {
    const key = this.#cryptoKey(req.parent);
    let all = [...key.versions.values()];
    const f = /^\s*state\s*(=|!=|:)\s*([A-Z_]+)\s*$/.exec(req.filter ?? "");
    if (req.filter && !f) throw invalid(`Invalid filter '${req.filter}'; the emulator supports state=, state!= and state:.`);
    if (f) all = all.filter((v) => (f[1] === "!=" ? v.state !== f[2] : v.state === f[2]));
    const { items, next } = this.#page(all, req);
    return { crypto_key_versions: items.map((v) => this.#versionProto(v)), next_page_token: next, total_size: all.length };
  }

  UpdateCryptoKeyVersion(req: Req): Res {
    const body = typeof req.crypto_key_version === "object" && req.crypto_key_version ? req.crypto_key_version : {};
    const { version } = this.#version(body.name);
    const paths = req.update_mask?.paths ?? [];
    if (paths.length === 0) throw invalid("The request must specify an update_mask.");
    if (paths.some((p) => p !== "state")) throw invalid(`The update_mask may only contain 'state' for CryptoKeyVersion.`);
    const next = body.state ?? "";
    if (next !== "ENABLED" && next !== "DISABLED") throw invalid(`crypto_key_version.state may only be set to ENABLED or DISABLED, got ${next || "CRYPTO_KEY_VERSION_STATE_UNSPECIFIED"}.`);
    if (version.state !== "ENABLED" && version.state !== "DISABLED") {
      throw precondition(`${version.name} is in state ${version.state}; only ENABLED and DISABLED versions can be updated.`);
    }
    version.state = next;
    return this.#versionProto(version);
  }

  DestroyCryptoKeyVersion(req: Req): Res {
    const { key, version } = this.#version(req.name);
    if (version.state !== "ENABLED" && version.state !== "DISABLED") {
      throw precondition(`${version.name} is in state ${version.state} and cannot be destroyed.`);
    }
    version.state = "DESTROY_SCHEDULED";
    version.destroyTime = new Date(this.now().getTime() + key.destroyScheduledMs);
    return this.#versionProto(version);
  }

  RestoreCryptoKeyVersion(req: Req): Res {
    const { version } = this.#version(req.name);
    if (version.state !== "DESTROY_SCHEDULED") {
      throw precondition(`${version.name} is in state ${version.state}; only DESTROY_SCHEDULED versions can be restored.`);
    }
    version.state = "DISABLED";
    version.destroyTime = undefined;
    return this.#versionProto(version);
  }

  // ---- cryptographic operations ------------------------------------------------------------------------------
  Encrypt(req: Req): Res {
    const name = req.name ?? "";
    const { key, version } = VERSION_RE.test(name) ? this.#version(name) : (() => {
      const k = this.#cryptoKey(name);
      const primary = k.primaryId !== undefined ? k.versions.get(k.primaryId) : undefined;
      if (k.purpose === "ENCRYPT_DECRYPT" && !primary) throw precondition(`${k.name} does not have a primary CryptoKeyVersion.`);
      return { key: k, version: primary };
    })();
    if (key.purpose !== "ENCRYPT_DECRYPT" || !version) throw invalid(`${key.name} has purpose ${key.purpose}; Encrypt requires ENCRYPT_DECRYPT.`);
    const plaintext = req.plaintext ?? Buffer.alloc(0);
    const aad = req.additional_authenticated_data ?? Buffer.alloc(0);
    if (plaintext.length > MAX_PLAINTEXT) throw invalid(`The plaintext must be at most ${MAX_PLAINTEXT} bytes.`);
    const vp = checkCrc("plaintext_crc32c", "plaintext", plaintext, req.plaintext_crc32c);
    const va = checkCrc("additional_authenticated_data_crc32c", "additional_authenticated_data", aad, req.additional_authenticated_data_crc32c);
    const material = this.#usable(version);
    const ciphertext = symmetricEncrypt(version.id, material.bytes, plaintext, aad);
    return {
      name: version.name, ciphertext, ciphertext_crc32c: int64(crc32c(ciphertext)), verified_plaintext_crc32c: vp,
      verified_additional_authenticated_data_crc32c: va, protection_level: version.protectionLevel,
    };
  }

  Decrypt(req: Req): Res {
    const key = this.#cryptoKey(req.name);
    if (key.purpose !== "ENCRYPT_DECRYPT") throw invalid(`${key.name} has purpose ${key.purpose}; Decrypt requires ENCRYPT_DECRYPT.`);
    const ciphertext = req.ciphertext ?? Buffer.alloc(0);
    const aad = req.additional_authenticated_data ?? Buffer.alloc(0);
    checkCrc("ciphertext_crc32c", "ciphertext", ciphertext, req.ciphertext_crc32c);
    checkCrc("additional_authenticated_data_crc32c", "additional_authenticated_data", aad, req.additional_authenticated_data_crc32c);
    const wrongKey = invalid("Decryption failed: verify that 'name' refers to the correct CryptoKey.");
    const id = ciphertextVersion(ciphertext);
    const version = id !== undefined ? key.versions.get(id) : undefined;
    if (!version) throw wrongKey;
    const material = this.#usable(version);
    const plaintext = symmetricDecrypt(material.bytes, ciphertext, aad);
    if (!plaintext) throw wrongKey;
    return { plaintext, plaintext_crc32c: int64(crc32c(plaintext)), used_primary: key.primaryId === id, protection_level: version.protectionLevel };
  }

  #asymmetric(name: string | undefined, purpose: string, op: string): { version: VersionRec; spec: AlgorithmSpec; material: Material } {
    const { key, version } = this.#version(name);
    if (key.purpose !== purpose) throw invalid(`${key.name} has purpose ${key.purpose}; ${op} requires ${purpose}.`);
    const spec = ALGORITHMS[version.algorithm];
    if (!spec) throw new GcpError(status.INTERNAL, "Internal error encountered.");
    return { version, spec, material: this.#usable(version) };
  }

  AsymmetricSign(req: Req): Res {
    const { version, spec, material } = this.#asymmetric(req.name, "ASYMMETRIC_SIGN", "AsymmetricSign");
    if (material.kind !== "private") throw new GcpError(status.INTERNAL, "Internal error encountered.");
    const data = req.data && req.data.length > 0 ? req.data : undefined;
    const which = req.digest?.digest;
    const digest = which ? (req.digest?.[which as "sha256" | "sha384" | "sha512"] ?? undefined) : undefined;
    const verifiedData = data ? checkCrc("data_crc32c", "data", data, req.data_crc32c) : false;
    const verifiedDigest = digest ? checkCrc("digest_crc32c", "digest", digest, req.digest_crc32c) : false;
    if ((spec.kind === "ed25519" || (spec.kind === "rsa" && spec.padding === "raw")) && !data) {
      throw invalid(`Algorithm ${version.algorithm} requires the data field.`);
    }
    if (!data) {
      const hash = spec.kind === "ec" || spec.kind === "rsa" ? spec.hash : null;
      if (!digest || !which) throw invalid("Either digest or data must be provided.");
      if (which !== hash) throw invalid(`The digest type ${which.toUpperCase()} does not match the algorithm ${version.algorithm}.`);
      if (digest.length !== digestLength(which)) throw invalid(`The ${which} digest must be ${digestLength(which)} bytes.`);
    }
    const signature = asymmetricSign(spec, material.privateKey, data ? { data } : { digest });
    return {
      signature, signature_crc32c: int64(crc32c(signature)), verified_digest_crc32c: verifiedDigest,
      verified_data_crc32c: verifiedData, name: version.name, protection_level: version.protectionLevel,
    };
  }

  AsymmetricDecrypt(req: Req): Res {
    const { version, spec, material } = this.#asymmetric(req.name, "ASYMMETRIC_DECRYPT", "AsymmetricDecrypt");
    if (material.kind !== "private" || spec.kind !== "rsa") throw new GcpError(status.INTERNAL, "Internal error encountered.");
    const ciphertext = req.ciphertext ?? Buffer.alloc(0);
    const verified = checkCrc("ciphertext_crc32c", "ciphertext", ciphertext, req.ciphertext_crc32c);
    let plaintext: Buffer;
    try {
      plaintext = crypto.privateDecrypt({ key: material.privateKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: spec.hash ?? "sha256" }, ciphertext);
    } catch {
      throw invalid("Decryption failed: the ciphertext is invalid.");
    }
    return { plaintext, plaintext_crc32c: int64(crc32c(plaintext)), verified_ciphertext_crc32c: verified, protection_level: version.protectionLevel };
  }

  GetPublicKey(req: Req): Res {
    const { key, version } = this.#version(req.name);
    if (key.purpose !== "ASYMMETRIC_SIGN" && key.purpose !== "ASYMMETRIC_DECRYPT") {
      throw precondition(`${key.name} has purpose ${key.purpose}; GetPublicKey requires an asymmetric key.`);
    }
    const material = this.#usable(version);
    if (material.kind !== "private") throw new GcpError(status.INTERNAL, "Internal error encountered.");
    const pem = material.publicKey.export({ format: "pem", type: "spki" }).toString();
    const format = req.public_key_format && req.public_key_format !== "PUBLIC_KEY_FORMAT_UNSPECIFIED" ? req.public_key_format : "PEM";
    if (format !== "PEM" && format !== "DER") throw invalid(`public_key_format ${format} is not supported for ${version.algorithm}.`);
    const data = format === "DER" ? material.publicKey.export({ format: "der", type: "spki" }) : Buffer.from(pem);
    return {
      pem, algorithm: version.algorithm, pem_crc32c: int64(crc32c(Buffer.from(pem))), name: version.name,
      protection_level: version.protectionLevel, public_key_format: format,
      public_key: { data, crc32c_checksum: int64(crc32c(data)) },
    };
  }

  #mac(req: Req, op: string): { version: VersionRec; mac: Buffer; verifiedData: boolean } {
    const { version, spec, material } = this.#asymmetric(req.name, "MAC", op);
    if (spec.kind !== "hmac") throw new GcpError(status.INTERNAL, "Internal error encountered.");
    const data = req.data ?? Buffer.alloc(0);
    const verifiedData = checkCrc("data_crc32c", "data", data, req.data_crc32c);
    return { version, verifiedData, mac: crypto.createHmac(spec.hash, material.bytes).update(data).digest() };
  }

  MacSign(req: Req): Res {
    const { version, mac, verifiedData } = this.#mac(req, "MacSign");
    return { name: version.name, mac, mac_crc32c: int64(crc32c(mac)), verified_data_crc32c: verifiedData, protection_level: version.protectionLevel };
  }

  MacVerify(req: Req): Res {
    const { version, mac, verifiedData } = this.#mac(req, "MacVerify");
    const given = req.mac ?? Buffer.alloc(0);
    const verifiedMac = checkCrc("mac_crc32c", "mac", given, req.mac_crc32c);
    const success = given.length === mac.length && crypto.timingSafeEqual(given, mac);
    return {
      name: version.name, success, verified_data_crc32c: verifiedData, verified_mac_crc32c: verifiedMac,
      verified_success_integrity: true, protection_level: version.protectionLevel,
    };
  }

  // ---- out-of-band changes (admin) ---------------------------------------------------------------------------
  adminSetVersionState(name: string, state: "ENABLED" | "DISABLED" | "DESTROY_SCHEDULED" | "DESTROYED"): void {
    const { key, version } = this.#version(name);
    if (state === "DESTROYED") return this.#destroyNow(key, version, this.now());
    if ((state === "ENABLED" || state === "DISABLED") && !version.material) {
      throw precondition(`${version.name} has no key material; it cannot be set to ${state}.`);
    }
    version.state = state;
    version.destroyTime = state === "DESTROY_SCHEDULED" ? new Date(this.now().getTime() + key.destroyScheduledMs) : undefined;
  }

  /** Replaces a version's material behind the client's back (symmetric: raw bytes; asymmetric: PKCS#8 DER). */
  adminReplaceMaterial(name: string, bytes: Buffer): void {
    const { version } = this.#version(name);
    const material = parseMaterial(version.algorithm, bytes);
    if (typeof material === "string") throw invalid(material);
    version.material = material;
    version.fingerprint = fingerprint(bytes);
  }

  adminSetLabels(name: string, labels: Record<string, string>): void {
    this.#cryptoKey(name).labels = { ...labels };
  }

  adminDeleteCryptoKey(name: string): void {
    this.#cryptoKey(name);
    this.cryptoKeys.delete(name);
  }

  adminExpireImportJob(name: string): void {
    const job = this.#importJob(name);
    job.state = "EXPIRED";
    job.expireEventTime = this.now();
  }

  /** The material a version holds (symmetric: raw bytes; asymmetric: PKCS#8 DER); throws when it holds none. */
  adminMaterial(name: string): Buffer {
    const { version } = this.#version(name);
    if (!version.material) throw precondition(`${version.name} holds no key material (state ${version.state}).`);
    return Buffer.from(version.material.bytes);
  }

  /** Waits until every import job's key generation has finished (for tests and reset). */
  async settled(): Promise<void> {
    await Promise.all([...this.importJobs.values()].map((j) => j.ready.catch(() => undefined)));
  }

  snapshot(): GcpKmsState {
    const versionState = (k: CryptoKeyRec, v: VersionRec): GcpVersionState => {
      this.#refreshVersion(k, v);
      const kcv = v.material ? kcvOf(v.algorithm, v.material) : undefined;
      return {
        name: v.name, id: v.id, state: v.state, algorithm: v.algorithm, protectionLevel: v.protectionLevel,
        createTime: v.createTime.toISOString(), imported: v.imported, importJob: v.importJob, importTime: iso(v.importTime),
        importFailureReason: v.importFailureReason, destroyTime: iso(v.destroyTime), destroyEventTime: iso(v.destroyEventTime),
        hasMaterial: !!v.material, kcv: kcv?.kcv, kcvMethod: kcv?.method,
      };
    };
    return {
      now: this.now().toISOString(),
      keyRings: [...this.keyRings.values()].map((r) => ({ name: r.name, createTime: r.createTime.toISOString() })),
      cryptoKeys: [...this.cryptoKeys.values()].map((k) => ({
        name: k.name, purpose: k.purpose, primary: k.primaryId !== undefined ? `${k.name}/cryptoKeyVersions/${k.primaryId}` : undefined,
        algorithm: k.algorithm, protectionLevel: k.protectionLevel, labels: { ...k.labels }, importOnly: k.importOnly,
        destroyScheduledDurationSeconds: Math.floor(k.destroyScheduledMs / 1000), createTime: k.createTime.toISOString(),
        versions: [...k.versions.values()].map((v) => versionState(k, v)),
      })),
      importJobs: [...this.importJobs.values()].map((j) => {
        this.#refreshJob(j);
        return {
          name: j.name, importMethod: j.importMethod, protectionLevel: j.protectionLevel, state: j.state,
          createTime: j.createTime.toISOString(), expireTime: j.expireTime.toISOString(), publicKeyPem: j.publicKeyPem,
        };
      }),
    };
  }
}
