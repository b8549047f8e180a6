/**
 * A fresh SoftHSM2 token in a temporary folder (STACK.md §6.1). SoftHSM reads SOFTHSM2_CONF when the library is
 * C_Initialize'd, so a test process sets `process.env.SOFTHSM2_CONF = token.conf` before creating a pkcs11
 * backend (each ava file runs in its own process). Fails loudly when softhsm2 is missing: .ci/setup.sh installs it.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export const SOFTHSM_MODULE_PATH = "/usr/lib/softhsm/libsofthsm2.so";

export interface SoftHsmToken {
  readonly dir: string;
  readonly conf: string;
  readonly modulePath: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly soPin: string;
  /** Environment for child processes (softhsm2-util, a daemon) that use this token. */
  readonly env: NodeJS.ProcessEnv;
  /** Adds another token to the same configuration (visible to a library initialised afterwards). */
  addToken(label: string): Promise<void>;
  cleanup(): Promise<void>;
}

export interface SoftHsmTokenOptions {
  readonly tokenLabel?: string;
  readonly pin?: string;
  readonly soPin?: string;
}

export async function createSoftHsmToken(options: SoftHsmTokenOptions = {}): Promise<SoftHsmToken> {
  if (!existsSync(SOFTHSM_MODULE_PATH)) {
    throw new Error(`SoftHSM2 is not installed (${SOFTHSM_MODULE_PATH} is missing): run .ci/setup.sh`);
  }
  const dir = await mkdtemp(join(tmpdir(), "mcko-softhsm-"));
  const tokens = join(dir, "tokens");
  await mkdir(tokens, { mode: 0o700 });
  const conf = join(dir, "softhsm2.conf");
  await writeFile(
    conf,
    [
      `directories.tokendir = ${tokens}`,
      "objectstore.backend = file",
      "log.level = ERROR",
      "slots.removable = false",
      "slots.mechanisms = ALL",
      "library.reset_on_fork = false",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const tokenLabel = options.tokenLabel ?? "mcko-test";
  const pin = options.pin ?? "5678";
  const soPin = options.soPin ?? "1234";
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  const addToken = async (label: string): Promise<void> => {
    try {
      await execFileAsync(
        "softhsm2-util",
        ["--init-token", "--free", "--label", label, "--so-pin", soPin, "--pin", pin],
        { env },
      );
    } catch (e) {
      throw new Error(`softhsm2-util --init-token failed (is softhsm2 installed? run .ci/setup.sh): ${String(e)}`);
    }
  };
  try {
    await addToken(tokenLabel);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    conf,
    modulePath: SOFTHSM_MODULE_PATH,
    tokenLabel,
    pin,
    soPin,
    env,
    addToken,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * Test-only knowledge for canaries: unwraps vault blobs under the token's master key(s) into non-sensitive session
 * objects and reads their secret parts (AES/HMAC value, RSA private exponent, EC private scalar), so a test can
 * search files and logs for them. The daemon never does this; the token allows it because the unwrap template,
 * not the master key, decides the new object's attributes. Call with no daemon logged in from this process.
 */
export async function recoverMaterialsForTest(
  token: SoftHsmToken,
  masterKeyLabel: string,
  blobs: ReadonlyArray<{ algorithm: string; blob: Buffer; masterKcv: string }>,
): Promise<Buffer[]> {
  const { default: pkcs11js } = await import("pkcs11js");
  const { acquireModule, findSlotByTokenLabel, login, logoutUser, openSession } = await import("../../daemon/src/hsm/pkcs11/module.js");
  const { Secret } = await import("../../daemon/src/util/secret.js");
  const P = pkcs11js;
  process.env.SOFTHSM2_CONF = token.conf;
  const mod = acquireModule(token.modulePath);
  const slot = findSlotByTokenLabel(mod, token.tokenLabel);
  const s = openSession(mod, slot);
  const out: Buffer[] = [];
  try {
    login(mod, slot, s, Secret.copyOf(Buffer.from(token.pin)), token.tokenLabel);
    const pk = mod.pkcs11;
    pk.C_FindObjectsInit(s, [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_LABEL, value: masterKeyLabel }]);
    const masters = pk.C_FindObjects(s, 100);
    pk.C_FindObjectsFinal(s);
    for (const b of blobs) {
      const family = b.algorithm.split("_")[0];
      const template =
        family === "AES" || family === "HMAC"
          ? [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: family === "AES" ? P.CKK_AES : P.CKK_GENERIC_SECRET }]
          : [{ type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }, { type: P.CKA_KEY_TYPE, value: family === "RSA" ? P.CKK_RSA : P.CKK_EC }];
      const attribute = family === "RSA" ? P.CKA_PRIVATE_EXPONENT : P.CKA_VALUE;
      let found: Buffer | undefined;
      for (const master of masters) {
        try {
          const h = pk.C_UnwrapKey(s, { mechanism: P.CKM_AES_KEY_WRAP_PAD }, master, b.blob, [
            ...template,
            { type: P.CKA_TOKEN, value: false },
            { type: P.CKA_SENSITIVE, value: false },
            { type: P.CKA_EXTRACTABLE, value: true },
          ]);
          const value = pk.C_GetAttributeValue(s, h, [{ type: attribute }])[0]?.value;
          pk.C_DestroyObject(s, h);
          if (Buffer.isBuffer(value)) found = Buffer.from(value);
          break;
        } catch {
          // Not under this master; try the next.
        }
      }
      if (!found) throw new Error(`a ${b.algorithm} blob (master ${b.masterKcv}) did not unwrap under any master on the token`);
      out.push(found);
    }
  } finally {
    try {
      mod.pkcs11.C_CloseSession(s);
    } catch {
      // gone
    }
    logoutUser(mod, slot);
    mod.release();
  }
  return out;
}
