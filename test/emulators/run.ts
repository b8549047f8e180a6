/**
 * Standalone launcher for the cloud emulators (`npm run emulators`): for the demo and for trying MCKO without a cloud
 * account. Starts every emulator in EMULATORS (or those named with --only), prints how to reach each one, and stops
 * cleanly on SIGINT/SIGTERM.
 *
 * Flags (each also as an environment variable, flags win):
 *   --host <addr>                  MCKO_EMU_HOST               listen address (default 127.0.0.1)
 *   --<name>-port <n>              MCKO_EMU_<NAME>_PORT        e.g. --aws-port 4566, --azure-port 8443 (0 = any free port)
 *   --<name>-admin-port <n>        MCKO_EMU_<NAME>_ADMIN_PORT  admin HTTP port (default: port + 1)
 *   --only <name,name>             MCKO_EMU_ONLY               start only these emulators
 *   --state-dir <dir>              MCKO_EMU_STATE_DIR          where certificates are kept (default <tmp>/mcko-emulators)
 * The last line printed is `MCKO_EMULATORS_READY <json>` with every endpoint, for scripts.
 *
 * To add an emulator, append an entry to EMULATORS.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { ADMIN_PREFIX } from "./common/admin-http.js";
import { makeTlsMaterial, type TlsMaterial } from "./common/certs.js";
import { startAwsKmsEmulator } from "./aws-kms/server.js";
import { startAzureKeyVaultEmulator } from "./azure-keyvault/server.js";
import { startGcpKmsEmulator } from "./gcp-kms/server.js";
import { DEFAULT_TOKEN as KEY_PROTECT_TOKEN, startKeyProtectEmulator } from "./key-protect/server.js";

/** What a started emulator reports and how to stop it. */
export interface StartedEmulator {
  /** Printed as "  key  value" lines and included in the ready JSON. */
  info: Record<string, string>;
  close(): Promise<void>;
}

export interface EmulatorContext {
  host: string;
  port: number;
  adminPort: number;
  /** A directory the emulator may keep files in (certificates) across restarts. */
  stateDir: string;
}

export interface EmulatorEntry {
  /** Short name used in flags and env (`--aws-port`, `MCKO_EMU_AWS_PORT`). */
  flag: string;
  /** Display name, also the key in the ready JSON. */
  name: string;
  defaultPort: number;
  start(ctx: EmulatorContext): Promise<StartedEmulator>;
}

/** Reuses the TLS material kept in stateDir so that a trusted CA survives restarts; makes and keeps one otherwise. */
async function keptTls(stateDir: string, name: string): Promise<{ tls: TlsMaterial; caPath: string }> {
  const file = join(stateDir, `${name}-tls.json`);
  const caPath = join(stateDir, `${name}-ca.pem`);
  let tls: TlsMaterial | undefined;
  if (existsSync(file)) {
    try {
      const parsed = JSON.parse(readFileSync(file, "utf8")) as Partial<TlsMaterial>;
      if (parsed.caCertPem && parsed.certPem && parsed.keyPem) tls = parsed as TlsMaterial;
    } catch {
      tls = undefined;
    }
  }
  if (!tls) {
    tls = await makeTlsMaterial({ commonName: `MCKO ${name} emulator`, validDays: 365 });
    writeFileSync(file, JSON.stringify(tls), { mode: 0o600 });
  }
  writeFileSync(caPath, tls.caCertPem);
  return { tls, caPath };
}

export const EMULATORS: EmulatorEntry[] = [
  {
    flag: "aws",
    name: "aws-kms",
    defaultPort: 4566,
    async start({ host, port, adminPort }) {
      const e = await startAwsKmsEmulator({ host, port, adminPort });
      return {
        info: {
          endpoint: e.endpoint,
          region: e.region,
          accessKeyId: e.accessKeyId,
          secretAccessKey: e.secretAccessKey,
          admin: `${e.adminUrl}${ADMIN_PREFIX}/keys`,
        },
        close: () => e.close(),
      };
    },
  },
  {
    flag: "azure",
    name: "azure-keyvault",
    defaultPort: 8443,
    async start({ host, port, adminPort, stateDir }) {
      const { tls, caPath } = await keptTls(stateDir, "azure-keyvault");
      const e = await startAzureKeyVaultEmulator({ host, port, adminPort, tls });
      return {
        info: {
          endpoint: e.endpoint,
          caCertPath: caPath,
          tenantId: e.tenantId,
          token: e.token,
          admin: `${e.adminUrl}${ADMIN_PREFIX}/keys`,
        },
        close: () => e.close(),
      };
    },
  },
  {
    flag: "gcp",
    name: "gcp-kms",
    defaultPort: 9010,
    async start({ host, port, adminPort }) {
      const e = await startGcpKmsEmulator({ host, port, adminPort });
      return {
        info: { endpoint: e.endpoint, credentials: "insecure (grpc.credentials.createInsecure())", admin: `${e.adminUrl}${ADMIN_PREFIX}/state` },
        close: () => e.close(),
      };
    },
  },
  {
    flag: "key-protect",
    name: "key-protect",
    defaultPort: 9020,
    async start({ host, port, adminPort }) {
      const e = await startKeyProtectEmulator({ host, port, adminPort });
      return {
        info: { endpoint: e.endpoint, token: KEY_PROTECT_TOKEN, admin: `${e.adminUrl}${ADMIN_PREFIX}/keys` },
        close: () => e.close(),
      };
    },
  },
];

function portOf(raw: string | undefined, fallback: number, what: string): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${what}: not a port: ${raw}`);
  return n;
}

async function main(): Promise<void> {
  const flagOptions: Record<string, { type: "string" }> = { host: { type: "string" }, only: { type: "string" }, "state-dir": { type: "string" } };
  for (const e of EMULATORS) {
    flagOptions[`${e.flag}-port`] = { type: "string" };
    flagOptions[`${e.flag}-admin-port`] = { type: "string" };
  }
  const { values } = parseArgs({ options: flagOptions, strict: true });
  const flag = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === "string" ? v : undefined;
  };
  const env = (name: string): string | undefined => process.env[`MCKO_EMU_${name.toUpperCase().replace(/-/g, "_")}`];
  const host = flag("host") ?? env("host") ?? "127.0.0.1";
  const stateDir = flag("state-dir") ?? env("state-dir") ?? join(tmpdir(), "mcko-emulators");
  mkdirSync(stateDir, { recursive: true });
  const onlyRaw = flag("only") ?? env("only");
  const only = onlyRaw ? new Set(onlyRaw.split(",").map((s) => s.trim())) : undefined;
  const chosen = EMULATORS.filter((e) => !only || only.has(e.flag) || only.has(e.name));
  if (chosen.length === 0) throw new Error(`--only ${onlyRaw ?? ""} names no emulator (known: ${EMULATORS.map((e) => e.flag).join(", ")})`);

  const started: StartedEmulator[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await Promise.allSettled(started.map((s) => s.close()));
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  const ready: Record<string, Record<string, string>> = {};
  try {
    for (const e of chosen) {
      const port = portOf(flag(`${e.flag}-port`) ?? env(`${e.flag}-port`), e.defaultPort, `--${e.flag}-port`);
      const adminPort = portOf(flag(`${e.flag}-admin-port`) ?? env(`${e.flag}-admin-port`), port === 0 ? 0 : port + 1, `--${e.flag}-admin-port`);
      const s = await e.start({ host, port, adminPort, stateDir });
      started.push(s);
      ready[e.name] = s.info;
      process.stdout.write(`${e.name}\n`);
      for (const [k, v] of Object.entries(s.info)) process.stdout.write(`  ${k.padEnd(16)}${v}\n`);
    }
  } catch (err) {
    process.stderr.write(`emulators: ${err instanceof Error ? err.message : String(err)}\n`);
    await stop(1);
    return;
  }
  process.stdout.write(`Admin API: GET|PUT|DELETE <admin>${ADMIN_PREFIX}/{keys,faults,calls,imports,...} (see test/emulators/*/README.md). Ctrl-C stops.\n`);
  process.stdout.write(`MCKO_EMULATORS_READY ${JSON.stringify(ready)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`emulators: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
