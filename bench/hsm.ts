/**
 * HSM benchmark (issue 3): two ratios measured in the same run on the same machine.
 * 1. pkcs11 CreateKey/s ÷ software CreateKey/s (generateKey AES_256: generate, KCV, wrap under the master).
 * 2. pkcs11 BYOK re-wrap ops/s (wrapForKeystore RSA_OAEP_SHA1, all in the token) ÷ a bare pkcs11js
 *    C_WrapKey(CKM_RSA_PKCS_OAEP) loop on the same token with the same concurrency (goal ≥ 0.7). The re-wrap path
 *    does strictly more token work than the bare loop (it must first unwrap the vault blob under the master), so
 *    a bare C_UnwrapKey + C_WrapKey loop is also printed as the like-for-like baseline.
 *
 * Run alone with `node --import=tsx bench/hsm.ts`; `bench/run.ts` can import `benchHsm`.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import pkcs11js from "pkcs11js";
import { acquireModule, findSlotByTokenLabel, login, logoutUser, openSession, type Handle } from "../daemon/src/hsm/pkcs11/module.js";
import { Pkcs11Hsm } from "../daemon/src/hsm/pkcs11/pkcs11-hsm.js";
import { SoftwareHsm } from "../daemon/src/hsm/software/software-hsm.js";
import type { Hsm, WrappedKey } from "../daemon/src/hsm/hsm.js";
import { Secret } from "../daemon/src/util/secret.js";
import { createSoftHsmToken } from "../test/support/softhsm.js";

const P = pkcs11js;

export interface HsmBenchResult {
  readonly softwareCreateKeyPerSecond: number;
  readonly pkcs11CreateKeyPerSecond: number;
  readonly createKeyRatio: number;
  readonly byokRewrapPerSecond: number;
  readonly bareWrapPerSecond: number;
  readonly bareUnwrapWrapPerSecond: number;
  readonly byokRatio: number;
  readonly byokRatioLikeForLike: number;
}

export interface HsmBenchOptions {
  /** Operations per measurement (after a warm-up of a tenth of them). Default 3000. */
  readonly operations?: number;
  /**
   * Rounds; each measures every quantity once, interleaved, and the medians are reported, so a burst of load from
   * elsewhere on the machine skews one round rather than one side of a ratio. Default 3.
   */
  readonly rounds?: number;
  /** Operations in flight at once. Default 16. */
  readonly concurrency?: number;
  /** Print the results (default true). */
  readonly print?: boolean;
}

/** Runs `op` `count` times with `concurrency` in flight; returns ops per second. */
async function measure(count: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await op(next++);
  };
  const warmUp = Math.max(1, Math.floor(count / 10));
  let w = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (w < warmUp) await op(w++);
  }));
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return count / seconds;
}

export async function benchHsm(options: HsmBenchOptions = {}): Promise<HsmBenchResult> {
  const count = options.operations ?? 3000;
  const rounds = options.rounds ?? 3;
  const concurrency = options.concurrency ?? 16;
  const dir = await mkdtemp(join(tmpdir(), "mcko-bench-hsm-"));
  const token = await createSoftHsmToken({ tokenLabel: "mcko-bench" });
  process.env.SOFTHSM2_CONF = token.conf;
  const pin = Secret.copyOf(Buffer.from(token.pin));
  const common = { modulePath: token.modulePath, tokenLabel: token.tokenLabel, masterKeyLabel: "mcko-bench-master" };
  const opened: Hsm[] = [];
  try {
    const masterKeyFile = join(dir, "master.keyring");
    await SoftwareHsm.initMasterKeyFile(masterKeyFile);
    const software = await SoftwareHsm.create({ masterKeyFile });
    opened.push(software);
    await Pkcs11Hsm.initMasterKey({ ...common, pin, adopt: false });
    const pkcs11 = await Pkcs11Hsm.create({ ...common, pin });
    opened.push(pkcs11);

    const keystore = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const wrappingKeySpki = keystore.publicKey.export({ type: "spki", format: "der" });
    const key: WrappedKey = await pkcs11.generateKey("AES_256");
    const request = { wrappingKeySpki, format: "RSA_OAEP_SHA1", allowSoftwareWrap: false } as const;
    const bare = await bareLoops(token.modulePath, token.tokenLabel, pin, wrappingKeySpki, concurrency);

    const samples: HsmBenchResult[] = [];
    for (let round = 0; round < rounds; round++) {
      const softwareCreateKeyPerSecond = await measure(count, concurrency, () => software.generateKey("AES_256"));
      const pkcs11CreateKeyPerSecond = await measure(count, concurrency, () => pkcs11.generateKey("AES_256"));
      const byokRewrapPerSecond = await measure(count, concurrency, () => pkcs11.wrapForKeystore(key, request));
      const bareWrapPerSecond = await bare.wrap(count);
      const bareUnwrapWrapPerSecond = await bare.unwrapWrap(count);
      samples.push({
        softwareCreateKeyPerSecond,
        pkcs11CreateKeyPerSecond,
        createKeyRatio: pkcs11CreateKeyPerSecond / softwareCreateKeyPerSecond,
        byokRewrapPerSecond,
        bareWrapPerSecond,
        bareUnwrapWrapPerSecond,
        byokRatio: byokRewrapPerSecond / bareWrapPerSecond,
        byokRatioLikeForLike: byokRewrapPerSecond / bareUnwrapWrapPerSecond,
      });
    }
    await bare.close();
    const median = (pick: (r: HsmBenchResult) => number): number => {
      const values = samples.map(pick).sort((a, b) => a - b);
      return values[Math.floor(values.length / 2)] ?? Number.NaN;
    };
    const result: HsmBenchResult = {
      softwareCreateKeyPerSecond: median((r) => r.softwareCreateKeyPerSecond),
      pkcs11CreateKeyPerSecond: median((r) => r.pkcs11CreateKeyPerSecond),
      createKeyRatio: median((r) => r.createKeyRatio),
      byokRewrapPerSecond: median((r) => r.byokRewrapPerSecond),
      bareWrapPerSecond: median((r) => r.bareWrapPerSecond),
      bareUnwrapWrapPerSecond: median((r) => r.bareUnwrapWrapPerSecond),
      byokRatio: median((r) => r.byokRatio),
      byokRatioLikeForLike: median((r) => r.byokRatioLikeForLike),
    };
    if (options.print ?? true) printResult(result, count, concurrency, rounds);
    return result;
  } finally {
    for (const hsm of opened) await hsm.close();
    pin.dispose();
    await token.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
}

interface BareLoops {
  wrap(count: number): Promise<number>;
  unwrapWrap(count: number): Promise<number>;
  close(): Promise<void>;
}

/** Bare pkcs11js loops on the same token: the baselines for the re-wrap path. */
async function bareLoops(
  modulePath: string,
  tokenLabel: string,
  pin: Secret,
  wrappingKeySpki: Buffer,
  concurrency: number,
): Promise<BareLoops> {
  const mod = acquireModule(modulePath);
  const slot = findSlotByTokenLabel(mod, tokenLabel);
  const sessions: Handle[] = [];
  const pk = mod.pkcs11;
  const close = async (): Promise<void> => {
    for (const s of sessions) pk.C_CloseSession(s);
    logoutUser(mod, slot);
    mod.release();
  };
  try {
    for (let i = 0; i < 4; i++) sessions.push(openSession(mod, slot));
    const s0 = sessions[0] as Handle;
    login(mod, slot, s0, pin, tokenLabel);
    const jwk = (await import("node:crypto")).createPublicKey({ key: wrappingKeySpki, format: "der", type: "spki" }).export({ format: "jwk" });
    const rsa = pk.C_CreateObject(s0, [
      { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_RSA },
      { type: P.CKA_TOKEN, value: false },
      { type: P.CKA_MODULUS, value: Buffer.from(jwk.n ?? "", "base64url") },
      { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from(jwk.e ?? "", "base64url") },
      { type: P.CKA_WRAP, value: true },
    ]);
    const aes = (extra: pkcs11js.Template): Handle =>
      pk.C_GenerateKey(s0, { mechanism: P.CKM_AES_KEY_GEN }, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
        { type: P.CKA_VALUE_LEN, value: 32 },
        { type: P.CKA_TOKEN, value: false },
        ...extra,
      ]);
    const kek = aes([{ type: P.CKA_WRAP, value: true }, { type: P.CKA_UNWRAP, value: true }]);
    const target = aes([{ type: P.CKA_EXTRACTABLE, value: true }]);
    const blob = Buffer.from(pk.C_WrapKey(s0, { mechanism: P.CKM_AES_KEY_WRAP_PAD }, kek, target, Buffer.alloc(64)));
    const oaep: pkcs11js.Mechanism = {
      mechanism: P.CKM_RSA_PKCS_OAEP,
      parameter: { type: P.CK_PARAMS_RSA_OAEP, hashAlg: P.CKM_SHA_1, mgf: P.CKG_MGF1_SHA1, source: 1 } as pkcs11js.RsaOAEP,
    };
    const session = (i: number): Handle => sessions[i % sessions.length] as Handle;
    const wrap = (count: number): Promise<number> =>
      measure(count, concurrency, (i) => pk.C_WrapKeyAsync(session(i), oaep, rsa, target, Buffer.alloc(512)));
    const unwrapWrap = (count: number): Promise<number> => measure(count, concurrency, async (i) => {
      const s = session(i);
      const h = await pk.C_UnwrapKeyAsync(s, { mechanism: P.CKM_AES_KEY_WRAP_PAD }, kek, blob, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
        { type: P.CKA_TOKEN, value: false },
        { type: P.CKA_EXTRACTABLE, value: true },
      ]);
      await pk.C_WrapKeyAsync(s, oaep, rsa, h, Buffer.alloc(512));
      pk.C_DestroyObject(s, h);
    });
    return { wrap, unwrapWrap, close };
  } catch (e) {
    await close();
    throw e;
  }
}

function printResult(r: HsmBenchResult, count: number, concurrency: number, rounds: number): void {
  const n = (x: number): string => x.toFixed(0).padStart(8);
  const lines = [
    `hsm bench (SoftHSM2; medians of ${rounds} interleaved rounds of ${count} ops, ${concurrency} in flight)`,
    `  software CreateKey AES_256        ${n(r.softwareCreateKeyPerSecond)} ops/s`,
    `  pkcs11   CreateKey AES_256        ${n(r.pkcs11CreateKeyPerSecond)} ops/s`,
    `  ratio pkcs11/software CreateKey   ${r.createKeyRatio.toFixed(3)}`,
    `  pkcs11 BYOK re-wrap RSA_OAEP_SHA1 ${n(r.byokRewrapPerSecond)} ops/s`,
    `  bare C_WrapKey RSA-OAEP loop      ${n(r.bareWrapPerSecond)} ops/s`,
    `  bare C_UnwrapKey+C_WrapKey loop   ${n(r.bareUnwrapWrapPerSecond)} ops/s`,
    `  ratio re-wrap/bare C_WrapKey      ${r.byokRatio.toFixed(3)} (goal >= 0.7)`,
    `  ratio re-wrap/bare unwrap+wrap    ${r.byokRatioLikeForLike.toFixed(3)}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchHsm();
}
