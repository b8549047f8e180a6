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
