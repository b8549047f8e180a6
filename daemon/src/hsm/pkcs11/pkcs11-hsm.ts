/**
 * The pkcs11 `Hsm` backend (pkcs11js; SoftHSM2 in tests, any PKCS#11 v2.40 token in production).
 *
 * - The master key is an AES-256 token object (CKA_EXTRACTABLE=false, CKA_SENSITIVE=true) found by label; several
 *   masters may share the label during a rotation, and the vault's recorded KCV picks the current one.
 * - Data keys are generated as session objects, wrapped at once under the master with CKM_AES_KEY_WRAP_PAD and
 *   destroyed; every operation on a blob unwraps it into a session object that is destroyed before returning.
 * - BYOK: the RSA-OAEP and RSA-AES (KWP) formats run inside the token. Where the token lacks the OAEP hash
 *   (SoftHSM2 2.6: SHA-1 only), RSA-AES runs only the RSA step over the ephemeral AES key in software; RSA-OAEP over
 *   the material itself is refused unless the keystore allows a software wrap (DESIGN.md).
 * - Every operation borrows one session from a pool for its whole duration; handles never leave this file.
 */
import {
  constants as cryptoConstants,
  createHash,
  createPublicKey,
  hash as digest,
  publicEncrypt,
  randomBytes,
  verify,
  type RsaPrivateKey,
} from "node:crypto";
import pkcs11js from "pkcs11js";
import {
  HsmError,
  keyFamily,
  symmetricKeyBytes,
  type AesGcmRequest,
  type ByokBlob,
  type ByokSoftwareStep,
  type ByokWrapRequest,
  type KeyAlgorithm,
  type MasterRotatableHsm,
  type WrappedKey,
} from "../hsm.js";
import {
  EC_PARAMS_DER,
  asymmetricParams,
  assertKeyAlgorithm,
  assertRandomLength,
  checkAesGcmRequest,
  checkByokRequest,
  ecSpkiFromPoint,
  frameSecret,
  hmacHash,
  unframeSecret,
  rsaPublicParts,
  rsaSpkiFromParts,
  spkiKcv,
  type OaepHash,
  type RsaPublicParts,
} from "../kcv.js";
import { Secret } from "../../util/secret.js";
import { UNSUPPORTED, ckrCode, pkcs11Call, toHsmError } from "./errors.js";
import {
  acquireModule,
  findSlotByTokenLabel,
  login,
  logoutUser,
  openSession,
  type Handle,
  type Pkcs11,
  type Pkcs11Module,
} from "./module.js";
import { SessionPool } from "./session-pool.js";

const P = pkcs11js;

export interface Pkcs11HsmOptions {
  /** Path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly modulePath: string;
  /** Label of the token (the slot is found by it). */
  readonly tokenLabel: string;
  /** User PIN; read from a file or the environment by config, never from the command line. Not disposed here. */
  readonly pin: Secret;
  /** CKA_LABEL of the master key token object(s). */
  readonly masterKeyLabel: string;
  /**
   * The master KCV recorded in the vault. Start is refused with `HSM_MASTER_KEY_MISMATCH` if no master with this
   * label has it. Required when several masters share the label (during a rotation).
   */
  readonly expectedMasterKcv?: string;
  /** Sessions kept open for concurrent operations. Default 16 (DEFAULT_SESSION_POOL_SIZE). */
  readonly sessionPoolSize?: number;
}

export interface Pkcs11InitMasterKeyOptions {
  readonly modulePath: string;
  readonly tokenLabel: string;
  readonly pin: Secret;
  readonly masterKeyLabel: string;
  /**
   * false: create a new master key; refused if one with the label exists. true: adopt the existing master key with
   * the label (refused if there is none, several, or it is not a non-extractable sensitive AES-256 key).
   */
  readonly adopt: boolean;
}

/**
 * As many sessions as a busy daemon has operations in flight: an operation of two or more token calls (a BYOK
 * re-wrap unwraps, wraps and destroys) leaves libuv's threads idle between its calls unless other operations have
 * calls queued. With 16 operations in flight, 16 sessions cut the CPU per SoftHSM re-wrap by a fifth to a third
 * against 4 (thread wake-ups) and raised its throughput accordingly (bench/hsm.ts). Tokens that allow fewer sessions set
 * `hsm.sessions` lower.
 */
export const DEFAULT_SESSION_POOL_SIZE = 16;

/** Output buffer for C_WrapKey: a PKCS#8 RSA-4096 key wrapped is about 2.4 KB. */
const WRAP_BUFFER_BYTES = 8192;

/** Largest AES-KWP (RFC 5649) wrap of a key of `algorithm`: the data padded to 8 bytes, plus 8. */
function kwpBytes(algorithm: KeyAlgorithm): number {
  const bytes = symmetricKeyBytes(algorithm);
  return bytes === undefined ? WRAP_BUFFER_BYTES : Math.ceil(bytes / 8) * 8 + 8;
}

const KWP: pkcs11js.Mechanism = { mechanism: P.CKM_AES_KEY_WRAP_PAD };

function oaepMechanism(hash: OaepHash): pkcs11js.Mechanism {
  const parameter: pkcs11js.RsaOAEP = {
    type: P.CK_PARAMS_RSA_OAEP,
    hashAlg: hash === "sha1" ? P.CKM_SHA_1 : P.CKM_SHA256,
    mgf: hash === "sha1" ? P.CKG_MGF1_SHA1 : P.CKG_MGF1_SHA256,
    source: 1, // CKZ_DATA_SPECIFIED with an empty label (not exported by pkcs11js)
  };
  return { mechanism: P.CKM_RSA_PKCS_OAEP, parameter };
}

function masterTemplate(label: string): pkcs11js.Template {
  return [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
    { type: P.CKA_VALUE_LEN, value: 32 },
    { type: P.CKA_LABEL, value: label },
    { type: P.CKA_TOKEN, value: true },
    { type: P.CKA_PRIVATE, value: true },
    { type: P.CKA_SENSITIVE, value: true },
    { type: P.CKA_EXTRACTABLE, value: false },
    { type: P.CKA_WRAP, value: true },
    { type: P.CKA_UNWRAP, value: true },
    { type: P.CKA_ENCRYPT, value: false },
    { type: P.CKA_DECRYPT, value: false },
  ];
}

/** Template of a data key as a session object; `sensitive: false` only where its value must be read. */
function keyTemplate(algorithm: KeyAlgorithm, options: { sensitive: boolean }): pkcs11js.Template {
  const common: pkcs11js.Template = [
    { type: P.CKA_TOKEN, value: false },
    { type: P.CKA_PRIVATE, value: true },
    { type: P.CKA_SENSITIVE, value: options.sensitive },
    { type: P.CKA_EXTRACTABLE, value: true },
  ];
  switch (keyFamily(algorithm)) {
    case "AES":
      return [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
        { type: P.CKA_ENCRYPT, value: true },
        ...common,
      ];
    case "HMAC":
      return [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
        { type: P.CKA_SIGN, value: true },
        ...common,
      ];
    case "RSA":
      return [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_RSA },
        { type: P.CKA_SIGN, value: true },
        ...common,
      ];
    case "EC":
      return [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
        { type: P.CKA_SIGN, value: true },
        ...common,
      ];
  }
}

/** `keyTemplate` for unwrapping blobs, built once per algorithm and sensitivity (pkcs11js only reads it). */
const UNWRAP_TEMPLATES = new Map<string, pkcs11js.Template>();
function unwrapTemplate(algorithm: KeyAlgorithm, sensitive: boolean): pkcs11js.Template {
  const id = `${algorithm}:${sensitive}`;
  let t = UNWRAP_TEMPLATES.get(id);
  if (t === undefined) {
    t = keyTemplate(algorithm, { sensitive });
    UNWRAP_TEMPLATES.set(id, t);
  }
  return t;
}

/** Opens, logs in and hands out sessions for one token; used by `create` and `initMasterKey`. */
async function connect(
  options: { modulePath: string; tokenLabel: string; pin: Secret },
  sessionCount: number,
): Promise<{ mod: Pkcs11Module; slot: Handle; sessions: Handle[]; disconnect: (closeSessions?: boolean) => void }> {
  const mod = acquireModule(options.modulePath);
  const sessions: Handle[] = [];
  let slot: Handle | undefined;
  let loggedIn = false;
  // `closeSessions: false` when a SessionPool already closed them: a closed handle must not be closed again, as
  // the token may have handed the number to another session of this process since.
  const disconnect = (closeSessions = true): void => {
    for (const s of sessions.splice(0)) {
      if (!closeSessions) continue;
      try {
        mod.pkcs11.C_CloseSession(s);
      } catch {
        // already gone
      }
    }
    if (loggedIn && slot !== undefined) logoutUser(mod, slot);
    mod.release();
  };
  try {
    slot = findSlotByTokenLabel(mod, options.tokenLabel);
    for (let i = 0; i < sessionCount; i++) sessions.push(openSession(mod, slot));
    const first = sessions[0];
    if (first === undefined) throw new HsmError("HSM_INTERNAL", "no session opened");
    login(mod, slot, first, options.pin, options.tokenLabel);
    loggedIn = true;
    return { mod, slot, sessions, disconnect };
  } catch (e) {
    disconnect();
    throw e;
  }
}

function findMasterHandles(pkcs11: Pkcs11, session: Handle, label: string): Handle[] {
  try {
    pkcs11.C_FindObjectsInit(session, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_LABEL, value: label },
    ]);
    try {
      return pkcs11.C_FindObjects(session, 1000);
    } finally {
      pkcs11.C_FindObjectsFinal(session);
    }
  } catch (e) {
    throw toHsmError(e, "C_FindObjects (master key)");
  }
}

/** Refuses a master key object that is not what DESIGN.md requires. */
function checkMasterAttributes(pkcs11: Pkcs11, session: Handle, handle: Handle, label: string): void {
  let attrs: pkcs11js.Attribute[];
  try {
    attrs = pkcs11.C_GetAttributeValue(session, handle, [
      { type: P.CKA_KEY_TYPE },
      { type: P.CKA_VALUE_LEN },
      { type: P.CKA_EXTRACTABLE },
      { type: P.CKA_SENSITIVE },
      { type: P.CKA_WRAP },
      { type: P.CKA_UNWRAP },
    ]);
  } catch (e) {
    throw toHsmError(e, "C_GetAttributeValue (master key)");
  }
  const [keyType, valueLen, extractable, sensitive, wrap, unwrap] = attrs.map((a) => a.value);
  const problems: string[] = [];
  if (readUlong(keyType) !== P.CKK_AES || readUlong(valueLen) !== 32) problems.push("it is not an AES-256 key");
  if (readBool(extractable)) problems.push("it is extractable");
  if (!readBool(sensitive)) problems.push("it is not sensitive");
  if (!readBool(wrap) || !readBool(unwrap)) problems.push("it cannot wrap and unwrap");
  if (problems.length > 0) {
    throw new HsmError(
      "HSM_INVALID_INPUT",
      `the key labelled "${label}" cannot be a master key: ${problems.join(", ")}`,
    );
  }
}

function readUlong(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (Buffer.isBuffer(value) && value.length > 0 && value.length <= 8) return value.readUIntLE(0, Math.min(value.length, 6));
  return undefined;
}

function readBool(value: unknown): boolean {
  if (typeof value === "boolean") return value;
  if (Buffer.isBuffer(value)) return value.some((b) => b !== 0);
  return false;
}

function readBuffer(pkcs11: Pkcs11, session: Handle, handle: Handle, type: number, what: string): Buffer {
  let attrs: pkcs11js.Attribute[];
  try {
    attrs = pkcs11.C_GetAttributeValue(session, handle, [{ type }]);
  } catch (e) {
    throw toHsmError(e, `C_GetAttributeValue (${what})`);
  }
  const value = attrs[0]?.value;
  if (!Buffer.isBuffer(value)) throw new HsmError("HSM_INTERNAL", `the token returned no ${what}`);
  return value;
}

/** enc-zero KCV of an AES key object: CKA_CHECK_VALUE if the token keeps it, else C_Encrypt on a session copy. */
async function aesKeyKcv(pkcs11: Pkcs11, session: Handle, handle: Handle): Promise<string> {
  try {
    const value = pkcs11.C_GetAttributeValue(session, handle, [{ type: P.CKA_CHECK_VALUE }])[0]?.value;
    if (Buffer.isBuffer(value) && value.length === 3) return value.toString("hex");
  } catch {
    // Not kept by this token: compute it below.
  }
  try {
    pkcs11.C_EncryptInit(session, { mechanism: P.CKM_AES_ECB }, handle);
    const block = await pkcs11.C_EncryptAsync(session, Buffer.alloc(16), Buffer.alloc(16));
    return block.subarray(0, 3).toString("hex");
  } catch (e) {
    if (ckrCode(e) !== P.CKR_KEY_FUNCTION_NOT_PERMITTED) throw toHsmError(e, "C_Encrypt (AES KCV)");
  }
  // A key that may not encrypt (a master key): a session copy that may.
  let copy: Handle | undefined;
  try {
    copy = pkcs11.C_CopyObject(session, handle, [
      { type: P.CKA_TOKEN, value: false },
      { type: P.CKA_ENCRYPT, value: true },
    ]);
    pkcs11.C_EncryptInit(session, { mechanism: P.CKM_AES_ECB }, copy);
    const block = await pkcs11.C_EncryptAsync(session, Buffer.alloc(16), Buffer.alloc(16));
    return block.subarray(0, 3).toString("hex");
  } catch (e) {
    throw toHsmError(e, "computing an AES KCV (CKA_CHECK_VALUE is not available)");
  } finally {
    if (copy !== undefined) destroyQuietly(pkcs11, session, copy);
  }
}

/**
 * A session copy of a master key (CKA_TOKEN=false; EXTRACTABLE and SENSITIVE cannot be weakened by a copy) for
 * the hot path: SoftHSM's file store re-checks a token object's file on every use, which made each wrap several
 * times slower and serialised concurrent calls. The token object stays the authority; the copy dies with the
 * backend's sessions. Tokens that refuse to copy are used directly.
 */
function workingCopy(pkcs11: Pkcs11, session: Handle, handle: Handle): Handle {
  try {
    return pkcs11.C_CopyObject(session, handle, [{ type: P.CKA_TOKEN, value: false }]);
  } catch {
    return handle;
  }
}

interface MasterKey {
  /** The token object. */
  readonly token: Handle;
  /** What operations use: a session copy of `token`, or `token` itself. */
  readonly working: Handle;
}

/** How many keystore wrapping keys stay imported as session objects for reuse. */
const WRAPPING_KEY_CACHE_SIZE = 64;

function destroyQuietly(pkcs11: Pkcs11, session: Handle, handle: Handle): void {
  try {
    pkcs11.C_DestroyObject(session, handle);
  } catch {
    // A session object also dies with its session; nothing else can be done here.
  }
}

export class Pkcs11Hsm implements MasterRotatableHsm {
  readonly kind = "pkcs11" as const;
  readonly #pkcs11: Pkcs11;
  readonly #pool: SessionPool;
  readonly #disconnect: (closeSessions?: boolean) => void;
  readonly #tokenLabel: string;
  readonly #masterKeyLabel: string;
  readonly #masters: Map<string, MasterKey>;
  /** Keystore RSA public keys imported as session objects, by SHA-256 of their SPKI; never evicted. */
  readonly #wrappingKeys = new Map<string, Promise<Handle>>();
  /** The same once imported, for the hot path (no await). */
  readonly #wrappingKeyHandles = new Map<string, Handle>();
  readonly #wrappingKeyParts = new Map<string, RsaPublicParts>();
  #current: string;
  #closed = false;
  /** Which OAEP hashes the token does, learnt on first use. */
  readonly #oaepSupport = new Map<OaepHash, Promise<boolean>>();
  readonly #oaepKnown = new Map<OaepHash, boolean>();

  private constructor(deps: {
    pkcs11: Pkcs11;
    pool: SessionPool;
    disconnect: (closeSessions?: boolean) => void;
    tokenLabel: string;
    masterKeyLabel: string;
    masters: Map<string, MasterKey>;
    current: string;
  }) {
    this.#pkcs11 = deps.pkcs11;
    this.#pool = deps.pool;
    this.#disconnect = deps.disconnect;
    this.#tokenLabel = deps.tokenLabel;
    this.#masterKeyLabel = deps.masterKeyLabel;
    this.#masters = deps.masters;
    this.#current = deps.current;
  }

  /** Sessions kept open on the token for concurrent operations (`hsm.sessions`). */
  get sessionCount(): number {
    return this.#pool.size;
  }


  /**
   * Loads the module, finds the token by label, logs in, finds the master key(s) by label and checks the KCV.
   * Refuses with HSM_TOKEN_NOT_FOUND, HSM_LOGIN_FAILED, HSM_MASTER_KEY_NOT_FOUND or HSM_MASTER_KEY_MISMATCH and a
   * message that says what to fix.
   */
  static async create(options: Pkcs11HsmOptions): Promise<Pkcs11Hsm> {
    const poolSize = options.sessionPoolSize ?? DEFAULT_SESSION_POOL_SIZE;
    if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 256) {
      throw new HsmError("HSM_INVALID_INPUT", "sessionPoolSize must be an integer from 1 to 256");
    }
    const { mod, sessions, disconnect } = await connect(options, poolSize);
    try {
      const session = sessions[0] as Handle;
      const masters = new Map<string, MasterKey>();
      for (const handle of findMasterHandles(mod.pkcs11, session, options.masterKeyLabel)) {
        checkMasterAttributes(mod.pkcs11, session, handle, options.masterKeyLabel);
        const kcv = await aesKeyKcv(mod.pkcs11, session, handle);
        masters.set(kcv, { token: handle, working: workingCopy(mod.pkcs11, session, handle) });
      }
      const found = [...masters.keys()];
      if (found.length === 0) {
        throw new HsmError(
          "HSM_MASTER_KEY_NOT_FOUND",
          `token "${options.tokenLabel}" has no master key labelled "${options.masterKeyLabel}"; create one with ` +
            "`mcko init --hsm pkcs11`, or check the master key label and that this is the vault's token",
        );
      }
      let current: string;
      if (options.expectedMasterKcv !== undefined) {
        if (!masters.has(options.expectedMasterKcv)) {
          throw new HsmError(
            "HSM_MASTER_KEY_MISMATCH",
            `the master key labelled "${options.masterKeyLabel}" on token "${options.tokenLabel}" has KCV ` +
              `${found.join(", ")}, but the vault was made under master KCV ${options.expectedMasterKcv}: ` +
              "this is not the vault's master key (wrong token, or the key was replaced)",
          );
        }
        current = options.expectedMasterKcv;
      } else if (found.length === 1 && found[0] !== undefined) {
        current = found[0];
      } else {
        throw new HsmError(
          "HSM_MASTER_KEY_MISMATCH",
          `${found.length} master keys are labelled "${options.masterKeyLabel}" (KCVs ${found.join(", ")}); ` +
            "give the vault's master KCV to choose the current one",
        );
      }
      return new Pkcs11Hsm({
        pkcs11: mod.pkcs11,
        pool: new SessionPool(mod.pkcs11, sessions),
        disconnect,
        tokenLabel: options.tokenLabel,
        masterKeyLabel: options.masterKeyLabel,
        masters,
        current,
      });
    } catch (e) {
      disconnect();
      throw e;
    }
  }

  /** Creates (or, with `adopt`, adopts) the master key on the token; returns its KCV for the vault to record. */
  static async initMasterKey(options: Pkcs11InitMasterKeyOptions): Promise<string> {
    const { mod, sessions, disconnect } = await connect(options, 1);
    try {
      const { pkcs11 } = mod;
      const session = sessions[0] as Handle;
      const existing = findMasterHandles(pkcs11, session, options.masterKeyLabel);
      if (options.adopt) {
        const [handle, ...others] = existing;
        if (handle === undefined) {
          throw new HsmError(
            "HSM_MASTER_KEY_NOT_FOUND",
            `token "${options.tokenLabel}" has no key labelled "${options.masterKeyLabel}" to adopt`,
          );
        }
        if (others.length > 0) {
          throw new HsmError(
            "HSM_INVALID_INPUT",
            `${existing.length} keys are labelled "${options.masterKeyLabel}"; adopt needs exactly one`,
          );
        }
        checkMasterAttributes(pkcs11, session, handle, options.masterKeyLabel);
        return await aesKeyKcv(pkcs11, session, handle);
      }
      if (existing.length > 0) {
        throw new HsmError(
          "HSM_INVALID_INPUT",
          `token "${options.tokenLabel}" already has a key labelled "${options.masterKeyLabel}"; ` +
            "adopt it (`--adopt`) or choose another label",
        );
      }
      const handle = await pkcs11Call("C_GenerateKey (master key)", () =>
        pkcs11.C_GenerateKeyAsync(session, { mechanism: P.CKM_AES_KEY_GEN }, masterTemplate(options.masterKeyLabel)),
      );
      return await aesKeyKcv(pkcs11, session, handle);
    } finally {
      disconnect();
    }
  }

  async masterKeyCheckValue(): Promise<string> {
    this.#assertOpen();
    return this.#current;
  }

  async generateKey(algorithm: KeyAlgorithm): Promise<WrappedKey> {
    this.#assertOpen();
    assertKeyAlgorithm(algorithm);
    return this.#pool.use(async (s) => {
      const masterKcv = this.#current;
      const master = this.#master(masterKcv);
      const family = keyFamily(algorithm);
      const created: Handle[] = [];
      try {
        if (family === "AES" || family === "HMAC") {
          const handle = await pkcs11Call(`C_GenerateKey (${algorithm})`, () =>
            this.#pkcs11.C_GenerateKeyAsync(
              s,
              { mechanism: family === "AES" ? P.CKM_AES_KEY_GEN : P.CKM_GENERIC_SECRET_KEY_GEN },
              [...keyTemplate(algorithm, { sensitive: true }), { type: P.CKA_VALUE_LEN, value: symmetricKeyBytes(algorithm) }],
            ),
          );
          created.push(handle);
          const kcv = await this.#symmetricKcv(s, algorithm, handle);
          return { algorithm, blob: await this.#wrap(s, master, handle), kcv, masterKcv };
        }
        const params = asymmetricParams(algorithm);
        if (params === undefined) throw new HsmError("HSM_INTERNAL", `no parameters for ${algorithm}`);
        const publicTemplate: pkcs11js.Template = [
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_VERIFY, value: true },
          ...(params.type === "rsa"
            ? [
                { type: P.CKA_MODULUS_BITS, value: params.modulusBits },
                { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
              ]
            : [{ type: P.CKA_EC_PARAMS, value: EC_PARAMS_DER[params.namedCurve] }]),
        ];
        const pair = await pkcs11Call(`C_GenerateKeyPair (${algorithm})`, () =>
          this.#pkcs11.C_GenerateKeyPairAsync(
            s,
            { mechanism: params.type === "rsa" ? P.CKM_RSA_PKCS_KEY_PAIR_GEN : P.CKM_EC_KEY_PAIR_GEN },
            publicTemplate,
            keyTemplate(algorithm, { sensitive: true }),
          ),
        );
        created.push(pair.publicKey, pair.privateKey);
        const publicKey =
          params.type === "rsa"
            ? rsaSpkiFromParts(
                readBuffer(this.#pkcs11, s, pair.publicKey, P.CKA_MODULUS, "modulus"),
                readBuffer(this.#pkcs11, s, pair.publicKey, P.CKA_PUBLIC_EXPONENT, "public exponent"),
              )
            : ecSpkiFromPoint(params.namedCurve, readBuffer(this.#pkcs11, s, pair.publicKey, P.CKA_EC_POINT, "EC point"));
        const blob = await this.#wrap(s, master, pair.privateKey);
        return { algorithm, blob, kcv: spkiKcv(publicKey), publicKey, masterKcv };
      } finally {
        for (const h of created) destroyQuietly(this.#pkcs11, s, h);
      }
    });
  }

  async checkValue(key: WrappedKey): Promise<string> {
    this.#assertOpen();
    assertKeyAlgorithm(key.algorithm);
    return this.#pool.use(async (s) => {
      const handle = await this.#unwrap(s, key, { sensitive: true });
      try {
        const family = keyFamily(key.algorithm);
        if (family === "AES" || family === "HMAC") return await this.#symmetricKcv(s, key.algorithm, handle);
        if (family === "RSA") {
          const spki = rsaSpkiFromParts(
            readBuffer(this.#pkcs11, s, handle, P.CKA_MODULUS, "modulus"),
            readBuffer(this.#pkcs11, s, handle, P.CKA_PUBLIC_EXPONENT, "public exponent"),
          );
          if (key.publicKey !== undefined && !spki.equals(key.publicKey)) {
            throw new HsmError("HSM_INVALID_INPUT", "the stored public key does not belong to the wrapped private key");
          }
          return spkiKcv(spki);
        }
        return spkiKcv(await this.#checkEcPublicKey(s, key, handle));
      } finally {
        destroyQuietly(this.#pkcs11, s, handle);
      }
    });
  }

  async wrapForKeystore(key: WrappedKey, request: ByokWrapRequest): Promise<ByokBlob> {
    this.#assertOpen();
    // Parsing an SPKI costs more than the token's RSA operation: keep the parts with the imported key.
    const wrappingKeyId = digest("sha256", request.wrappingKeySpki, "hex");
    const target = checkByokRequest(key, request, (spki) => {
      const known = this.#wrappingKeyParts.get(wrappingKeyId);
      if (known !== undefined) return known;
      const parts = rsaPublicParts(spki);
      if (this.#wrappingKeyParts.size < WRAPPING_KEY_CACHE_SIZE) this.#wrappingKeyParts.set(wrappingKeyId, parts);
      return parts;
    });
    return this.#pool.use(async (s) => {
      const created: Handle[] = [];
      const track = (h: Handle): Handle => {
        created.push(h);
        return h;
      };
      try {
        // Known wrapping key and OAEP support are read without an await: this path is token-bound, and every
        // await costs a promise and a microtask turn on top of the token calls.
        const rsaKey = this.#wrappingKeyHandles.get(wrappingKeyId) ?? (await this.#wrappingKey(s, wrappingKeyId, target, track));
        const inHsm = this.#oaepKnown.get(target.hash) ?? (await this.#oaepSupported(s, target.hash, rsaKey));
        // Node types oaepHash only on RsaPrivateKey; publicEncrypt honours it for a public KeyObject too.
        const rsaSoftware = (): RsaPrivateKey => ({
          key: createPublicKey({ key: rsaSpkiFromParts(target.modulus, target.publicExponent), format: "der", type: "spki" }),
          padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: target.hash,
        });
        let softwareStep: ByokSoftwareStep = "none";
        let blob: Buffer;
        if (!target.isKwp) {
          if (inHsm) {
            const material = track(await this.#unwrap(s, key, { sensitive: true }));
            blob = await this.#wrap(s, rsaKey, material, oaepMechanism(target.hash), target.modulusBytes);
          } else {
            if (!request.allowSoftwareWrap) {
              throw new HsmError(
                "HSM_MECHANISM_UNSUPPORTED",
                `token "${this.#tokenLabel}" cannot do RSA-OAEP with ${target.hash.toUpperCase()}, and ` +
                  `${request.format} would put the key material itself through software; set allow_software_wrap ` +
                  "on the keystore to permit it, or use a format the token supports",
              );
            }
            // The one path where material is in daemon memory: permitted by the keystore, audited by the caller.
            const material = track(await this.#unwrap(s, key, { sensitive: false }));
            const value = readBuffer(this.#pkcs11, s, material, P.CKA_VALUE, "key value");
            try {
              blob = publicEncrypt(rsaSoftware(), value);
            } finally {
              value.fill(0);
            }
            softwareStep = "rsa-over-material";
          }
        } else {
          const ephemeral = track(
            await pkcs11Call("C_GenerateKey (ephemeral AES-256)", () =>
              this.#pkcs11.C_GenerateKeyAsync(s, { mechanism: P.CKM_AES_KEY_GEN }, [
                { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
                { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
                { type: P.CKA_VALUE_LEN, value: 32 },
                { type: P.CKA_TOKEN, value: false },
                { type: P.CKA_PRIVATE, value: true },
                // Readable only when the RSA step has to run in software over it.
                { type: P.CKA_SENSITIVE, value: inHsm },
                { type: P.CKA_EXTRACTABLE, value: true },
                { type: P.CKA_WRAP, value: true },
              ]),
            ),
          );
          const material = track(await this.#unwrap(s, key, { sensitive: true }));
          const kwpPart = await this.#wrap(s, ephemeral, material, KWP, kwpBytes(key.algorithm));
          let rsaPart: Buffer;
          if (inHsm) {
            rsaPart = await this.#wrap(s, rsaKey, ephemeral, oaepMechanism(target.hash), target.modulusBytes);
          } else {
            const value = readBuffer(this.#pkcs11, s, ephemeral, P.CKA_VALUE, "ephemeral key value");
            try {
              rsaPart = publicEncrypt(rsaSoftware(), value);
            } finally {
              value.fill(0);
            }
            softwareStep = "rsa-over-ephemeral-key";
          }
          blob = Buffer.concat([rsaPart, kwpPart]);
        }
        return { format: request.format, blob, softwareStep };
      } finally {
        for (const h of created.reverse()) destroyQuietly(this.#pkcs11, s, h);
      }
    });
  }

  /** CKM_AES_GCM inside the token over a sensitive session copy of the key version (CKA_ENCRYPT, never readable). */
  async aesGcmEncrypt(key: WrappedKey, request: AesGcmRequest): Promise<Buffer> {
    this.#assertOpen();
    checkAesGcmRequest(key, request);
    return this.#pool.use(async (s) => {
      const handle = await this.#unwrap(s, key, { sensitive: true });
      try {
        const mechanism: pkcs11js.Mechanism = {
          mechanism: P.CKM_AES_GCM,
          parameter: { type: P.CK_PARAMS_AES_GCM, iv: request.iv, ivBits: request.iv.length * 8, tagBits: 128 } as pkcs11js.AesGCM,
        };
        const out: Buffer = await pkcs11Call("C_Encrypt (AES-GCM)", async () => {
          this.#pkcs11.C_EncryptInit(s, mechanism, handle);
          return this.#pkcs11.C_EncryptAsync(s, request.plaintext, Buffer.alloc(request.plaintext.length + 16));
        });
        return Buffer.from(out);
      } finally {
        destroyQuietly(this.#pkcs11, s, handle);
      }
    });
  }

  async wrapSecret(secret: Secret): Promise<Buffer> {
    this.#assertOpen();
    if (secret.length === 0) throw new HsmError("HSM_INVALID_INPUT", "cannot wrap an empty secret");
    return this.#pool.use(async (s) => {
      const framed = frameSecret(secret.expose());
      const handle = await pkcs11Call("C_CreateObject (internal secret)", () =>
        this.#pkcs11.C_CreateObject(s, [
          { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
          { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_PRIVATE, value: true },
          { type: P.CKA_SENSITIVE, value: true },
          { type: P.CKA_EXTRACTABLE, value: true },
          { type: P.CKA_VALUE, value: framed },
        ]),
      ).finally(() => framed.fill(0));
      try {
        return await this.#wrap(s, this.#master(this.#current), handle);
      } finally {
        destroyQuietly(this.#pkcs11, s, handle);
      }
    });
  }

  async unwrapSecret(blob: Buffer): Promise<Secret> {
    this.#assertOpen();
    return this.#pool.use(async (s) => {
      // The blob does not name its master: try the current one first, then the others (rotation in progress).
      const kcvs = [this.#current, ...[...this.#masters.keys()].filter((k) => k !== this.#current)];
      for (const kcv of kcvs) {
        let handle: Handle;
        try {
          handle = await this.#pkcs11.C_UnwrapKeyAsync(s, KWP, this.#master(kcv), blob, [
            { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
            { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
            { type: P.CKA_TOKEN, value: false },
            { type: P.CKA_PRIVATE, value: true },
            { type: P.CKA_SENSITIVE, value: false },
            { type: P.CKA_EXTRACTABLE, value: true },
          ]);
        } catch (e) {
          const error = toHsmError(e, "C_UnwrapKey (internal secret)", true);
          if (error.reason === "HSM_UNWRAP_FAILED") continue;
          throw error;
        }
        let framed: Buffer | undefined;
        try {
          framed = readBuffer(this.#pkcs11, s, handle, P.CKA_VALUE, "secret value");
          return Secret.adopt(unframeSecret(framed));
        } finally {
          framed?.fill(0);
          destroyQuietly(this.#pkcs11, s, handle);
        }
      }
      throw new HsmError("HSM_UNWRAP_FAILED", "the secret does not unwrap under any master key this backend holds");
    });
  }

  async randomBytes(length: number): Promise<Buffer> {
    this.#assertOpen();
    assertRandomLength(length);
    return this.#pool.use(async (s) =>
      pkcs11Call("C_GenerateRandom", () => Buffer.from(this.#pkcs11.C_GenerateRandom(s, Buffer.alloc(length)))),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.close();
    this.#masters.clear();
    this.#wrappingKeys.clear();
    this.#wrappingKeyHandles.clear();
    this.#disconnect(false);
  }

  async createMasterKey(): Promise<string> {
    this.#assertOpen();
    return this.#pool.use(async (s) => {
      const handle = await pkcs11Call("C_GenerateKey (master key)", () =>
        this.#pkcs11.C_GenerateKeyAsync(s, { mechanism: P.CKM_AES_KEY_GEN }, masterTemplate(this.#masterKeyLabel)),
      );
      const kcv = await aesKeyKcv(this.#pkcs11, s, handle);
      if (this.#masters.has(kcv)) {
        // Two masters with one KCV (chance 2^-24) could not be told apart: drop the new one and let the caller retry.
        destroyQuietly(this.#pkcs11, s, handle);
        throw new HsmError("HSM_INTERNAL", "the new master key's KCV collides with an existing master; retry");
      }
      this.#masters.set(kcv, { token: handle, working: workingCopy(this.#pkcs11, s, handle) });
      this.#current = kcv;
      return kcv;
    });
  }

  async masterKeyCheckValues(): Promise<string[]> {
    this.#assertOpen();
    return [this.#current, ...[...this.#masters.keys()].filter((k) => k !== this.#current)];
  }

  async rewrapToCurrentMaster(key: WrappedKey): Promise<WrappedKey> {
    this.#assertOpen();
    assertKeyAlgorithm(key.algorithm);
    const masterKcv = this.#current;
    if (key.masterKcv === masterKcv) return key;
    return this.#pool.use(async (s) => {
      const handle = await this.#unwrap(s, key, { sensitive: true });
      try {
        return { ...key, blob: await this.#wrap(s, this.#master(masterKcv), handle), masterKcv };
      } finally {
        destroyQuietly(this.#pkcs11, s, handle);
      }
    });
  }

  async destroyMasterKey(masterKcv: string): Promise<void> {
    this.#assertOpen();
    if (masterKcv === this.#current) {
      throw new HsmError("HSM_INVALID_INPUT", `master key ${masterKcv} is the current master and cannot be destroyed`);
    }
    this.#master(masterKcv);
    const master = this.#masters.get(masterKcv) as MasterKey;
    await this.#pool.use(async (s) => {
      await pkcs11Call("C_DestroyObject (master key)", () => this.#pkcs11.C_DestroyObject(s, master.token));
      this.#masters.delete(masterKcv);
      if (!master.working.equals(master.token)) destroyQuietly(this.#pkcs11, s, master.working);
    });
  }

  /**
   * The keystore's RSA public key as a session object: imported once per key and reused (an import costs as much as
   * the wrap itself); beyond the cache size, imported per call and destroyed by the caller through `track`.
   */
  async #wrappingKey(
    s: Handle,
    id: string,
    target: { modulus: Buffer; publicExponent: Buffer },
    track: (h: Handle) => Handle,
  ): Promise<Handle> {
    const create = (): Promise<Handle> =>
      pkcs11Call("C_CreateObject (wrapping key)", () =>
        this.#pkcs11.C_CreateObject(s, [
          { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
          { type: P.CKA_KEY_TYPE, value: P.CKK_RSA },
          { type: P.CKA_TOKEN, value: false },
          { type: P.CKA_MODULUS, value: target.modulus },
          { type: P.CKA_PUBLIC_EXPONENT, value: target.publicExponent },
          { type: P.CKA_WRAP, value: true },
          { type: P.CKA_ENCRYPT, value: true },
        ]),
      );
    let cached = this.#wrappingKeys.get(id);
    if (cached === undefined) {
      if (this.#wrappingKeys.size >= WRAPPING_KEY_CACHE_SIZE) return track(await create());
      cached = create();
      this.#wrappingKeys.set(id, cached);
      cached.then(
        (h) => this.#wrappingKeyHandles.set(id, h),
        () => this.#wrappingKeys.delete(id),
      );
    }
    return cached;
  }

  /**
   * C_WrapKey into a fresh buffer of `outBytes` (the exact or largest size of the result, where the caller knows
   * it: an 8 KB buffer per call was most of the allocation on the BYOK path). The result is that buffer when it
   * fills it, else a copy of the slice pkcs11js returns (so a small result does not pin 8 KB).
   */
  async #wrap(s: Handle, wrappingKey: Handle, key: Handle, mechanism: pkcs11js.Mechanism = KWP, outBytes = WRAP_BUFFER_BYTES): Promise<Buffer> {
    const out: Buffer = await pkcs11Call("C_WrapKey", () => this.#pkcs11.C_WrapKeyAsync(s, mechanism, wrappingKey, key, Buffer.alloc(outBytes)));
    return out.length === outBytes ? out : Buffer.from(out);
  }

  /** Unwraps a vault blob into a session object and checks it is the algorithm the vault says. */
  async #unwrap(s: Handle, key: WrappedKey, options: { sensitive: boolean }): Promise<Handle> {
    const master = this.#master(key.masterKcv);
    const handle = await pkcs11Call(
      "C_UnwrapKey",
      () => this.#pkcs11.C_UnwrapKeyAsync(s, KWP, master, key.blob, unwrapTemplate(key.algorithm, options.sensitive)),
      true,
    );
    try {
      this.#checkUnwrapped(s, key.algorithm, key.blob, handle);
      return handle;
    } catch (e) {
      destroyQuietly(this.#pkcs11, s, handle);
      throw e;
    }
  }

  /**
   * SoftHSM leaves CKA_VALUE_LEN at 0 on unwrapped secret keys, so a symmetric key's length is checked on the blob
   * (RFC 5649: the key sizes are multiples of 8, so the blob is exactly 8 bytes longer) and asymmetric keys on the
   * modulus or curve of the unwrapped object.
   */
  #checkUnwrapped(s: Handle, algorithm: KeyAlgorithm, blob: Buffer, handle: Handle): void {
    const params = asymmetricParams(algorithm);
    let ok: boolean;
    if (params === undefined) {
      ok = blob.length === (symmetricKeyBytes(algorithm) ?? 0) + 8;
    } else if (params.type === "rsa") {
      const modulus = readBuffer(this.#pkcs11, s, handle, P.CKA_MODULUS, "modulus");
      let i = 0;
      while (i < modulus.length && modulus[i] === 0) i++;
      ok = (modulus.length - i) * 8 === params.modulusBits;
    } else {
      ok = readBuffer(this.#pkcs11, s, handle, P.CKA_EC_PARAMS, "EC parameters").equals(EC_PARAMS_DER[params.namedCurve]);
    }
    if (!ok) throw new HsmError("HSM_UNWRAP_FAILED", `the unwrapped material is not an ${algorithm} key`);
  }

  async #symmetricKcv(s: Handle, algorithm: KeyAlgorithm, handle: Handle): Promise<string> {
    if (keyFamily(algorithm) === "AES") return aesKeyKcv(this.#pkcs11, s, handle);
    // hmac-empty: HMAC with the key's own hash over the empty message (kcv.ts); C_SignFinal alone signs "".
    const mechanism = { sha256: P.CKM_SHA256_HMAC, sha384: P.CKM_SHA384_HMAC, sha512: P.CKM_SHA512_HMAC }[
      hmacHash(algorithm)
    ];
    return pkcs11Call("C_Sign (HMAC KCV)", async () => {
      this.#pkcs11.C_SignInit(s, { mechanism }, handle);
      const mac = await this.#pkcs11.C_SignFinalAsync(s, Buffer.alloc(64));
      return mac.subarray(0, 3).toString("hex");
    });
  }

  /**
   * An EC private key object does not hold its public point, so the stored public key is proved to belong to the
   * unwrapped private key by a signature made in the token and verified here.
   */
  async #checkEcPublicKey(s: Handle, key: WrappedKey, handle: Handle): Promise<Buffer> {
    if (key.publicKey === undefined) {
      throw new HsmError("HSM_INVALID_INPUT", `an ${key.algorithm} key needs its public key to compute the KCV`);
    }
    const challenge = randomBytes(32);
    const signature = await pkcs11Call("C_Sign (EC key check)", async () => {
      this.#pkcs11.C_SignInit(s, { mechanism: P.CKM_ECDSA }, handle);
      return this.#pkcs11.C_SignAsync(s, createHash("sha256").update(challenge).digest(), Buffer.alloc(132));
    });
    let matches: boolean;
    try {
      const publicKey = createPublicKey({ key: key.publicKey, format: "der", type: "spki" });
      matches = verify("sha256", challenge, { key: publicKey, dsaEncoding: "ieee-p1363" }, signature);
    } catch {
      matches = false;
    }
    if (!matches) {
      throw new HsmError("HSM_INVALID_INPUT", "the stored public key does not belong to the wrapped private key");
    }
    return key.publicKey;
  }

  /**
   * Whether the token does RSA-OAEP with `hash`, learnt once by wrapping a throwaway AES key under the keystore's
   * public key (never the target material).
   */
  #oaepSupported(s: Handle, hash: OaepHash, rsaKey: Handle): Promise<boolean> {
    let known = this.#oaepSupport.get(hash);
    if (known === undefined) {
      known = this.#probeOaep(s, hash, rsaKey);
      this.#oaepSupport.set(hash, known);
      known.then(
        (yes) => this.#oaepKnown.set(hash, yes),
        () => this.#oaepSupport.delete(hash),
      );
    }
    return known;
  }

  async #probeOaep(s: Handle, hash: OaepHash, rsaKey: Handle): Promise<boolean> {
    const probe = await pkcs11Call("C_GenerateKey (OAEP probe)", () =>
      this.#pkcs11.C_GenerateKeyAsync(s, { mechanism: P.CKM_AES_KEY_GEN }, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
        { type: P.CKA_VALUE_LEN, value: 16 },
        { type: P.CKA_TOKEN, value: false },
        { type: P.CKA_EXTRACTABLE, value: true },
      ]),
    );
    try {
      await this.#pkcs11.C_WrapKeyAsync(s, oaepMechanism(hash), rsaKey, probe, Buffer.alloc(1024));
      return true;
    } catch (e) {
      const code = ckrCode(e);
      if (code !== undefined && UNSUPPORTED.has(code)) return false;
      throw toHsmError(e, `C_WrapKey (RSA-OAEP ${hash} probe)`);
    } finally {
      destroyQuietly(this.#pkcs11, s, probe);
    }
  }

  #master(kcv: string): Handle {
    const handle = this.#masters.get(kcv)?.working;
    if (handle === undefined) {
      throw new HsmError(
        "HSM_MASTER_KEY_NOT_FOUND",
        `no master key with KCV ${kcv} labelled "${this.#masterKeyLabel}" on token "${this.#tokenLabel}"`,
      );
    }
    return handle;
  }

  #assertOpen(): void {
    if (this.#closed) throw new HsmError("HSM_UNAVAILABLE", "the pkcs11 HSM backend is closed");
  }
}
