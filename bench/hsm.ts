/**
 * HSM benchmark (issue 3): two ratios measured in the same run on the same machine.
 * 1. pkcs11 CreateKey/s ÷ software CreateKey/s (generateKey AES_256: generate, KCV, wrap under the master).
 * 2. pkcs11 BYOK re-wrap ops/s (wrapForKeystore RSA_OAEP_SHA1, all in the token) ÷ a bare pkcs11js
 *    C_WrapKey(CKM_RSA_PKCS_OAEP) loop on the same token with the same concurrency (goal ≥ 0.7). Both sides use
 *    pkcs11js's async calls with `concurrency` operations in flight (the re-wrap with the backend's default session
 *    pool); the bare loop runs both with 4 sessions shared by the operations in flight and with one session per
 *    operation in flight, and the faster of the two is the baseline. The same pair is also measured with one
 *    operation at a time (single-threaded figure).
 *    The re-wrap path does strictly more token work than the bare loop (it must first unwrap the vault blob under
 *    the master, and destroy the unwrapped object after), so a bare C_UnwrapKey + C_WrapKey + C_DestroyObject loop
 *    is also printed as the like-for-like baseline, and the CPU time of each of the three token calls (synchronous,
 *    one thread) gives the ceiling any re-wrap can reach against a bare C_WrapKey: wrap ÷ (unwrap + wrap + destroy).
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
  /** The same pair with one operation in flight. */
  readonly byokRewrapSinglePerSecond: number;
  readonly bareWrapSinglePerSecond: number;
  readonly byokRatioSingle: number;
  /** CPU µs per synchronous token call on one thread, and the ceiling wrap ÷ (unwrap + wrap + destroy). */
  readonly wrapCallCpuUs: number;
  readonly unwrapCallCpuUs: number;
  readonly destroyCallCpuUs: number;
  readonly byokCeiling: number;
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
      const bareWrapPerSecond = Math.max(await bare.wrap(count, concurrency, "shared"), await bare.wrap(count, concurrency, "own"));
      const bareUnwrapWrapPerSecond = Math.max(await bare.unwrapWrap(count, concurrency, "shared"), await bare.unwrapWrap(count, concurrency, "own"));
      const single = Math.max(200, Math.floor(count / 4));
      const byokRewrapSinglePerSecond = await measure(single, 1, () => pkcs11.wrapForKeystore(key, request));
      const bareWrapSinglePerSecond = await bare.wrap(single, 1, "own");
      const calls = bare.callCosts(count);
      samples.push({
        softwareCreateKeyPerSecond,
        pkcs11CreateKeyPerSecond,
        createKeyRatio: pkcs11CreateKeyPerSecond / softwareCreateKeyPerSecond,
        byokRewrapPerSecond,
        bareWrapPerSecond,
        bareUnwrapWrapPerSecond,
        byokRatio: byokRewrapPerSecond / bareWrapPerSecond,
        byokRatioLikeForLike: byokRewrapPerSecond / bareUnwrapWrapPerSecond,
        byokRewrapSinglePerSecond,
        bareWrapSinglePerSecond,
        byokRatioSingle: byokRewrapSinglePerSecond / bareWrapSinglePerSecond,
        wrapCallCpuUs: calls.wrap,
        unwrapCallCpuUs: calls.unwrap,
        destroyCallCpuUs: calls.destroy,
        byokCeiling: calls.wrap / (calls.unwrap + calls.wrap + calls.destroy),
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
      byokRewrapSinglePerSecond: median((r) => r.byokRewrapSinglePerSecond),
      bareWrapSinglePerSecond: median((r) => r.bareWrapSinglePerSecond),
      byokRatioSingle: median((r) => r.byokRatioSingle),
      wrapCallCpuUs: median((r) => r.wrapCallCpuUs),
      unwrapCallCpuUs: median((r) => r.unwrapCallCpuUs),
      destroyCallCpuUs: median((r) => r.destroyCallCpuUs),
      byokCeiling: median((r) => r.byokCeiling),
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

/** "shared": 4 sessions, operation i on session i mod 4; "own": one session per operation in flight. */
type SessionUse = "shared" | "own";

interface BareLoops {
  wrap(count: number, concurrency: number, sessions: SessionUse): Promise<number>;
  unwrapWrap(count: number, concurrency: number, sessions: SessionUse): Promise<number>;
  /** CPU µs per synchronous call on this thread: C_WrapKey (RSA-OAEP), C_UnwrapKey (AES-KWP), C_DestroyObject. */
  callCosts(count: number): { wrap: number; unwrap: number; destroy: number };
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
    for (let i = 0; i < Math.max(4, concurrency); i++) sessions.push(openSession(mod, slot));
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
    // "own": operations take a free session from a list (as many as are in flight), like the backend's pool.
    const loop = (count: number, concurrency: number, use: SessionUse, op: (s: Handle) => Promise<unknown>): Promise<number> => {
      if (use === "shared") return measure(count, concurrency, (i) => op(sessions[i % 4] as Handle));
      const idle = sessions.slice(0, concurrency);
      return measure(count, concurrency, async () => {
        const s = idle.pop() as Handle;
        try {
          return await op(s);
        } finally {
          idle.push(s);
        }
      });
    };
    const unwrapTemplate: pkcs11js.Template = [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
      { type: P.CKA_TOKEN, value: false },
      { type: P.CKA_EXTRACTABLE, value: true },
    ];
    const wrap = (count: number, concurrency: number, use: SessionUse): Promise<number> =>
      loop(count, concurrency, use, (s) => pk.C_WrapKeyAsync(s, oaep, rsa, target, Buffer.alloc(512)));
    const unwrapWrap = (count: number, concurrency: number, use: SessionUse): Promise<number> =>
      loop(count, concurrency, use, async (s) => {
        const h = await pk.C_UnwrapKeyAsync(s, { mechanism: P.CKM_AES_KEY_WRAP_PAD }, kek, blob, unwrapTemplate);
        await pk.C_WrapKeyAsync(s, oaep, rsa, h, Buffer.alloc(512));
        pk.C_DestroyObject(s, h);
      });
    const cpuPerCall = (n: number, call: (i: number) => void): number => {
      const start = process.cpuUsage();
      for (let i = 0; i < n; i++) call(i);
      const used = process.cpuUsage(start);
      return (used.user + used.system) / n;
    };
    const callCosts = (count: number): { wrap: number; unwrap: number; destroy: number } => {
      const out = Buffer.alloc(512);
      cpuPerCall(Math.floor(count / 10), () => pk.C_WrapKey(s0, oaep, rsa, target, out));
      const wrapUs = cpuPerCall(count, () => pk.C_WrapKey(s0, oaep, rsa, target, out));
      const handles: Handle[] = [];
      const unwrapUs = cpuPerCall(count, () => handles.push(pk.C_UnwrapKey(s0, { mechanism: P.CKM_AES_KEY_WRAP_PAD }, kek, blob, unwrapTemplate)));
      const destroyUs = cpuPerCall(handles.length, (i) => pk.C_DestroyObject(s0, handles[i] as Handle));
      return { wrap: wrapUs, unwrap: unwrapUs, destroy: destroyUs };
    };
    return { wrap, unwrapWrap, callCosts, close };
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
    `  one at a time: re-wrap ${r.byokRewrapSinglePerSecond.toFixed(0)} / bare C_WrapKey ${r.bareWrapSinglePerSecond.toFixed(0)} ops/s = ${r.byokRatioSingle.toFixed(3)}`,
    `  CPU per sync call: C_UnwrapKey ${r.unwrapCallCpuUs.toFixed(1)} µs, C_WrapKey ${r.wrapCallCpuUs.toFixed(1)} µs, C_DestroyObject ${r.destroyCallCpuUs.toFixed(1)} µs; ceiling wrap/(unwrap+wrap+destroy) = ${r.byokCeiling.toFixed(3)}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchHsm();
}
