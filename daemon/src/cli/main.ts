/**
 * `mcko`: initialise a home, run the daemon, and manage vaults, keys and the audit log from a shell.
 * Tables for people, `--output json` for scripts. Exit codes: 0 ok, 1 error, 2 audit chain broken.
 */
import { Command, Option } from "commander";
import { readFileSync } from "node:fs";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { isIP } from "node:net";
import { Key as KeyMsg, KeyAlgorithm as PbAlg, KeyState as PbState, type Key as PbKey } from "../../../protos/gen/mcko/v1/key.js";
import { Vault as VaultMsg } from "../../../protos/gen/mcko/v1/vault.js";
import { AuditEvent as AuditEventMsg } from "../../../protos/gen/mcko/v1/audit_event.js";
import { VerifyAuditChainResponse } from "../../../protos/gen/mcko/v1/audit_service.js";
import { ConfigError, loadConfig } from "../config/config.js";
import { pinFromEnvironment } from "../config/hsm-secrets.js";
import { StartupError } from "../core/internal-keys.js";
import { HsmError } from "../hsm/hsm.js";
import { createLogger } from "../log/logger.js";
import { issueClientCert } from "../pki/certificates.js";
import { isRole, ROLES } from "../core/authz.js";
import { StoreError } from "../store/store.js";
import { Secret } from "../util/secret.js";
import { call, connect, decodeError, type Clients } from "./client.js";
import { CliConfigError, defaultHome, resolveConnection, type ConnectionFlags } from "./client-config.js";
import { initHome } from "./init.js";
import { addHsmCommands } from "./hsm.js";
import { addKeystoreCommands } from "./keystore.js";
import { printFields, printJson, printTable } from "./output.js";

class UsageError extends Error {}

const program = new Command("mcko")
  .description("MCKO, the multicloud key orchestrator: vault, NIST key lifecycle and BYOK to the clouds")
  .showHelpAfterError()
  .option("--home <dir>", "MCKO home made by `mcko init` (default: $MCKO_HOME or ./.mcko)")
  .option("--addr <host:port>", "daemon address (default: $MCKO_ADDR or the home's client.json)")
  .option("--ca <file>", "CA certificate (default: $MCKO_CA_CERT or the home's)")
  .option("--cert <file>", "client certificate (default: $MCKO_CLIENT_CERT or the home's admin certificate)")
  .option("--key <file>", "client key (default: $MCKO_CLIENT_KEY or the home's admin key)")
  .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json"]).default("table"));

const json = () => program.opts<{ output: string }>().output === "json";

async function withClients<T>(fn: (c: Clients) => Promise<T>): Promise<T> {
  const clients = connect(resolveConnection(program.opts<ConnectionFlags>()));
  try {
    return await fn(clients);
  } finally {
    clients.close();
  }
}

function keyName(arg: string): string {
  if (/^vaults\/[^/]+\/keys\/[^/]+$/.test(arg)) return arg;
  const m = /^([^/]+)\/([^/]+)$/.exec(arg);
  if (!m) throw new UsageError(`expected a key as VAULT/KEY or vaults/VAULT/keys/KEY, got ${JSON.stringify(arg)}`);
  return `vaults/${m[1]}/keys/${m[2]}`;
}

function vaultName(arg: string): string {
  return arg.startsWith("vaults/") ? arg : `vaults/${arg}`;
}

function parseDuration(s: string): number {
  const m = /^(\d+)([smhd])$/.exec(s);
  if (!m) throw new UsageError(`expected a duration like 90d, 24h, 30m or 3600s, got ${JSON.stringify(s)}`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "s" | "m" | "h" | "d"];
}

function parseLabels(list: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new UsageError(`expected a label as key=value, got ${JSON.stringify(kv)}`);
    labels[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return labels;
}

function parseTime(s: string, flag: string): Date {
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) throw new UsageError(`${flag}: expected an RFC 3339 time such as 2027-01-31T12:00:00Z, got ${JSON.stringify(s)}`);
  return d;
}

function enumName(prefix: string, map: Record<number, string>, v: number): string {
  return (map[v] ?? String(v)).replace(prefix, "");
}

function algorithmValue(s: string): PbAlg {
  const v = PbAlg[`KEY_ALGORITHM_${s.toUpperCase().replace(/-/g, "_")}` as keyof typeof PbAlg];
  if (v === undefined || v === PbAlg.UNRECOGNIZED || v === PbAlg.KEY_ALGORITHM_UNSPECIFIED) {
    throw new UsageError(`unknown algorithm ${JSON.stringify(s)}; use one of AES_128, AES_192, AES_256, RSA_2048, RSA_3072, RSA_4096, EC_P256, EC_P384, HMAC_SHA256, HMAC_SHA384, HMAC_SHA512`);
  }
  return v;
}

function stateValue(s: string): PbState {
  const v = PbState[`KEY_STATE_${s.toUpperCase().replace(/-/g, "_")}` as keyof typeof PbState];
  if (v === undefined || v === PbState.UNRECOGNIZED || v === PbState.KEY_STATE_UNSPECIFIED) {
    throw new UsageError(`unknown state ${JSON.stringify(s)}; use one of PRE_ACTIVATION, ACTIVE, SUSPENDED, DEACTIVATED, COMPROMISED, DESTROYED`);
  }
  return v;
}

function keyRow(k: PbKey): Record<string, string> {
  const primary = k.versions.find((v) => v.versionNumber === k.primaryVersion);
  return {
    name: k.name,
    algorithm: enumName("KEY_ALGORITHM_", PbAlg, k.algorithm),
    state: enumName("KEY_STATE_", PbState, k.state),
    primary: String(k.primaryVersion),
    kcv: primary?.kcv ?? "",
    labels: Object.entries(k.labels).map(([a, b]) => `${a}=${b}`).join(","),
  };
}

function showKey(k: PbKey): void {
  if (json()) return printJson(KeyMsg.toJSON(k));
  const r = keyRow(k);
  printFields([
    ["name", r.name!],
    ["algorithm", r.algorithm!],
    ["state", r.state!],
    ["primary version", r.primary!],
    ["kcv", r.kcv ? `${r.kcv} (${k.versions.find((v) => v.versionNumber === k.primaryVersion)?.kcvMethod ?? ""})` : "(destroyed)"],
    ["versions", k.versions.map((v) => `${v.versionNumber}:${v.kcv || "-"}`).join(" ")],
    ["labels", r.labels || "-"],
    ["activation time", k.activationTime?.toISOString() ?? "-"],
    ["deactivation time", k.deactivationTime?.toISOString() ?? "-"],
    ["rotation period", k.rotationPeriod ? `${k.rotationPeriod.seconds}s` : "-"],
    ["next rotation", k.nextRotationTime?.toISOString() ?? "-"],
    ["protection", k.protectionLevel],
    ["etag", k.etag],
  ]);
}

// ---- init, cert, daemon ----------------------------------------------------------------------------------------

program
  .command("init")
  .description("create a CA, server and admin certificates, a master key and a config file in DIR")
  .argument("<dir>", "folder to create (the MCKO home)")
  .option("--listen <host:port>", "address the daemon listens on", "127.0.0.1:7443")
  .option("--san <name...>", "extra server certificate names (DNS names or IP addresses)", [])
  .option("--days <n>", "certificate validity in days", "365")
  .addOption(new Option("--hsm <backend>", "where the master key lives").choices(["software", "pkcs11"]).default("software"))
  .option("--hsm-module <path>", "PKCS#11 module", "/usr/lib/softhsm/libsofthsm2.so")
  .option("--hsm-token <label>", "PKCS#11 token label")
  .option("--hsm-pin-file <file>", "file with the PKCS#11 user PIN (0600); or set MCKO_HSM_PIN")
  .option("--hsm-master-label <label>", "label of the master key object", "mcko-master")
  .option("--hsm-adopt", "adopt an existing master key with that label instead of creating one", false)
  .option("--hsm-env <KEY=VALUE...>", "environment for the PKCS#11 module (e.g. SOFTHSM2_CONF=/path)", [])
  .action(async (dir: string, o: { listen: string; san: string[]; days: string; hsm: string; hsmModule: string; hsmToken?: string; hsmPinFile?: string; hsmMasterLabel: string; hsmAdopt: boolean; hsmEnv: string[] }) => {
    const names = ["localhost", ...o.san.filter((s) => !isIP(s))];
    const ips = ["127.0.0.1", ...o.san.filter((s) => isIP(s) !== 0)];
    let hsm: Parameters<typeof initHome>[0]["hsm"] = { backend: "software" };
    if (o.hsm === "pkcs11") {
      if (!o.hsmToken) throw new UsageError("--hsm pkcs11 needs --hsm-token LABEL");
      let pin: Secret;
      if (o.hsmPinFile) pin = Secret.adopt(Buffer.from(readFileSync(o.hsmPinFile, "utf8").replace(/\n$/, "")));
      else {
        const env = pinFromEnvironment();
        if (!env) throw new UsageError("--hsm pkcs11 needs the PIN in a file (--hsm-pin-file) or in MCKO_HSM_PIN; it is never taken from the command line");
        pin = Secret.adopt(Buffer.from(env));
      }
      const moduleEnv = parseLabels(o.hsmEnv);
      hsm = { backend: "pkcs11", modulePath: o.hsmModule, tokenLabel: o.hsmToken, masterKeyLabel: o.hsmMasterLabel, pin, adopt: o.hsmAdopt, moduleEnv, ...(o.hsmPinFile ? { pinFile: o.hsmPinFile } : {}) };
    }
    try {
      const r = await initHome({ dir, listen: o.listen, dnsNames: names, ipAddresses: ips, hsm, validityDays: Number(o.days) });
      if (json()) return printJson(r);
      process.stdout.write(`initialised ${resolve(dir)}\n  config:      ${r.configFile}\n  master key:  KCV ${r.masterKcv} (${o.hsm})\n  admin cert:  ${join(resolve(dir), "admin.pem")}\nstart the daemon with: mcko daemon --config ${r.configFile}\n`);
    } finally {
      if (hsm.backend === "pkcs11") hsm.pin.dispose();
    }
  });

const cert = program.command("cert").description("client certificates");
cert
  .command("issue")
  .description("issue a client certificate signed by the home's CA, with role grants")
  .requiredOption("--name <cn>", "principal name (certificate CN)")
  .option("--role <role>", `role: ${ROLES.join(", ")}`)
  .option("--vault <vault>", "vault the role applies to (* for all)", "*")
  .option("--grant <role:vault...>", "more grants", [])
  .option("--out <prefix>", "write PREFIX.pem and PREFIX.key (default: HOME/clients/NAME)")
  .option("--days <n>", "validity in days", "365")
  .action(async (o: { name: string; role?: string; vault: string; grant: string[]; out?: string; days: string }) => {
    const home = defaultHome(program.opts<{ home?: string }>().home);
    const grants = [...(o.role ? [`${o.role}:${o.vault}`] : []), ...o.grant].map((g) => {
      const [role, vault] = g.split(":");
      if (!role || !vault || !isRole(role)) throw new UsageError(`bad grant ${JSON.stringify(g)}: expected ROLE:VAULT with ROLE one of ${ROLES.join(", ")}`);
      if (vault !== "*" && !/^[a-z][a-z0-9-]*$/.test(vault)) throw new UsageError(`bad vault in grant ${JSON.stringify(g)}`);
      return { role, vault };
    });
    if (grants.length === 0) throw new UsageError("give at least one grant: --role ROLE [--vault VAULT] or --grant ROLE:VAULT");
    const ca = { certPem: await readFile(join(home, "tls/ca.pem"), "utf8"), keyPem: await readFile(join(home, "tls/ca.key"), "utf8") };
    const issued = issueClientCert(ca, { commonName: o.name, grants, validityDays: Number(o.days) });
    const prefix = resolve(o.out ?? join(home, "clients", o.name));
    const { mkdir } = await import("node:fs/promises");
    await mkdir(resolve(prefix, ".."), { recursive: true });
    await writeFile(`${prefix}.pem`, issued.certPem, { flag: "wx" });
    await writeFile(`${prefix}.key`, issued.keyPem, { flag: "wx", mode: 0o600 });
    await chmod(`${prefix}.key`, 0o600);
    if (json()) return printJson({ cert: `${prefix}.pem`, key: `${prefix}.key`, grants });
    process.stdout.write(`issued ${prefix}.pem (key ${prefix}.key) for CN=${o.name}: ${grants.map((g) => `${g.role} on ${g.vault}`).join(", ")}\n`);
  });

program
  .command("daemon")
  .description("run the MCKO daemon (mckod) in the foreground; SIGTERM drains and stops it")
  .requiredOption("--config <file>", "config file made by `mcko init`")
  .action(async (o: { config: string }) => {
    const config = loadConfig(o.config);
    const log = createLogger(config.logLevel);
    // Loaded here, not at the top: the daemon pulls in every cloud SDK, which the other commands never need.
    const { startDaemon } = await import("../main.js");
    const daemon = await startDaemon(config, log);
    // A ready line for people and supervisors, whatever the log level (logs go to stderr).
    process.stdout.write(`mckod serving on ${config.listen.host}:${daemon.port}\n`);
    const onSignal = (sig: string) => {
      log.info({ signal: sig }, "shutting down");
      daemon.stop().then(
        () => process.exit(0),
        (e: unknown) => {
          log.error({ err: String(e) }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    process.on("SIGINT", () => onSignal("SIGINT"));
  });

// ---- vaults -----------------------------------------------------------------------------------------------------

const vault = program.command("vault").description("vaults");
vault
  .command("create")
  .argument("<id>", "vault id")
  .option("--display-name <name>", "display name", "")
  .option("--description <text>", "description", "")
  .action(async (id: string, o: { displayName: string; description: string }) =>
    withClients(async (c) => {
      const r = await call(c.vaults.createVault, c.vaults, { vaultId: id, vault: { name: "", displayName: o.displayName, description: o.description, etag: "", keyCount: 0n }, requestId: crypto.randomUUID() });
      if (json()) printJson(VaultMsg.toJSON(r.vault!));
      else process.stdout.write(`created ${r.vault?.name}\n`);
    }),
  );
vault.command("list").action(async () =>
  withClients(async (c) => {
    const all = [];
    let pageToken = "";
    do {
      const r = await call(c.vaults.listVaults, c.vaults, { pageSize: 1000, pageToken });
      all.push(...r.vaults);
      pageToken = r.nextPageToken;
    } while (pageToken);
    if (json()) return printJson(all.map((v) => VaultMsg.toJSON(v)));
    printTable(all.map((v) => ({ name: v.name, keys: String(v.keyCount), display: v.displayName, created: v.createTime?.toISOString() ?? "" })), ["name", "keys", "display", "created"]);
  }),
);
vault
  .command("show")
  .argument("<id>")
  .action(async (id: string) =>
    withClients(async (c) => {
      const r = await call(c.vaults.getVault, c.vaults, { name: vaultName(id) });
      if (json()) return printJson(VaultMsg.toJSON(r.vault!));
      const v = r.vault!;
      printFields([["name", v.name], ["display name", v.displayName], ["description", v.description], ["keys", String(v.keyCount)], ["created", v.createTime?.toISOString() ?? ""], ["etag", v.etag]]);
    }),
  );

// ---- keys -------------------------------------------------------------------------------------------------------

const key = program.command("key").description("keys");
key
  .command("create")
  .argument("<key>", "VAULT/KEY")
  .requiredOption("--algorithm <alg>", "AES_256, RSA_3072, EC_P256, HMAC_SHA256, …")
  .option("--label <k=v...>", "labels", [])
  .option("--activation-time <time>", "activate at this time (RFC 3339); the key waits in PRE_ACTIVATION")
  .option("--deactivation-time <time>", "deactivate at this time (RFC 3339)")
  .option("--rotation-period <duration>", "rotate automatically, e.g. 90d")
  .option("--pre-activation", "create in PRE_ACTIVATION", false)
  .action(async (arg: string, o: { algorithm: string; label: string[]; activationTime?: string; deactivationTime?: string; rotationPeriod?: string; preActivation: boolean }) => {
    const name = keyName(arg);
    const [, v, , id] = name.split("/");
    const req = {
      parent: `vaults/${v}`,
      keyId: id!,
      key: {
        name: "",
        algorithm: algorithmValue(o.algorithm),
        state: 0,
        versions: [],
        primaryVersion: 0,
        labels: parseLabels(o.label),
        etag: "",
        protectionLevel: "",
        ...(o.activationTime ? { activationTime: parseTime(o.activationTime, "--activation-time") } : {}),
        ...(o.deactivationTime ? { deactivationTime: parseTime(o.deactivationTime, "--deactivation-time") } : {}),
        ...(o.rotationPeriod ? { rotationPeriod: { seconds: BigInt(parseDuration(o.rotationPeriod)), nanos: 0 } } : {}),
      },
      initialState: o.preActivation ? PbState.KEY_STATE_PRE_ACTIVATION : PbState.KEY_STATE_UNSPECIFIED,
      requestId: crypto.randomUUID(),
    };
    await withClients(async (c) => showKey((await call(c.keys.createKey, c.keys, req)).key!));
  });
key
  .command("list")
  .argument("<vault>")
  .option("--filter <expr>", "e.g. 'state = ACTIVE AND labels.env = prod'", "")
  .action(async (v: string, o: { filter: string }) =>
    withClients(async (c) => {
      const all: PbKey[] = [];
      let pageToken = "";
      do {
        const r = await call(c.keys.listKeys, c.keys, { parent: vaultName(v), pageSize: 1000, pageToken, filter: o.filter });
        all.push(...r.keys);
        pageToken = r.nextPageToken;
      } while (pageToken);
      if (json()) return printJson(all.map((k) => KeyMsg.toJSON(k)));
      printTable(all.map(keyRow), ["name", "algorithm", "state", "primary", "kcv", "labels"]);
    }),
  );
key
  .command("show")
  .argument("<key>", "VAULT/KEY")
  .action(async (arg: string) => withClients(async (c) => showKey((await call(c.keys.getKey, c.keys, { name: keyName(arg) })).key!)));
key
  .command("state")
  .description("move a key to another lifecycle state (NIST SP 800-57)")
  .argument("<key>", "VAULT/KEY")
  .argument("<state>", "ACTIVE, SUSPENDED, DEACTIVATED, COMPROMISED, DESTROYED")
  .option("--reason <text>", "why (required for COMPROMISED)", "")
  .action(async (arg: string, state: string, o: { reason: string }) =>
    withClients(async (c) => showKey((await call(c.keys.setKeyState, c.keys, { name: keyName(arg), state: stateValue(state), etag: "", reason: o.reason })).key!)),
  );
key
  .command("rotate")
  .argument("<key>", "VAULT/KEY")
  .action(async (arg: string) =>
    withClients(async (c) => showKey((await call(c.keys.rotateKey, c.keys, { name: keyName(arg), etag: "", requestId: crypto.randomUUID() })).key!)),
  );
key
  .command("destroy")
  .description("destroy a key's material: ACTIVE/SUSPENDED keys are deactivated first; --delete also removes its metadata")
  .argument("<key>", "VAULT/KEY")
  .option("--delete", "remove the metadata too", false)
  .action(async (arg: string, o: { delete: boolean }) =>
    withClients(async (c) => {
      const name = keyName(arg);
      let k = (await call(c.keys.getKey, c.keys, { name })).key!;
      if (k.state === PbState.KEY_STATE_ACTIVE || k.state === PbState.KEY_STATE_SUSPENDED) {
        k = (await call(c.keys.setKeyState, c.keys, { name, state: PbState.KEY_STATE_DEACTIVATED, etag: k.etag, reason: "mcko key destroy" })).key!;
      }
      if (k.state !== PbState.KEY_STATE_DESTROYED && k.state !== PbState.KEY_STATE_DESTROYED_COMPROMISED) {
        k = (await call(c.keys.setKeyState, c.keys, { name, state: PbState.KEY_STATE_DESTROYED, etag: k.etag, reason: "mcko key destroy" })).key!;
      }
      if (o.delete) {
        await call(c.keys.deleteKey, c.keys, { name, etag: k.etag });
        if (!json()) process.stdout.write(`destroyed and deleted ${name}\n`);
        else printJson({ name, deleted: true });
      } else showKey(k);
    }),
  );

// ---- audit ------------------------------------------------------------------------------------------------------

const audit = program.command("audit").description("the audit log");
audit
  .command("list")
  .option("--vault <vault>", "one vault's events (default: all vaults)")
  .option("--filter <expr>", "e.g. 'result = PERMISSION_DENIED'", "")
  .option("--limit <n>", "at most this many events", "100")
  .action(async (o: { vault?: string; filter: string; limit: string }) =>
    withClients(async (c) => {
      const limit = Number(o.limit);
      const events: AuditEventMsg[] = [];
      let pageToken = "";
      do {
        const r = await call(c.audit.listAuditEvents, c.audit, { parent: o.vault ? vaultName(o.vault) : "vaults/-", pageSize: Math.min(1000, limit - events.length), pageToken, filter: o.filter });
        events.push(...r.auditEvents);
        pageToken = r.nextPageToken;
      } while (pageToken && events.length < limit);
      if (json()) return printJson(events.map((e) => AuditEventMsg.toJSON(e)));
      printTable(
        events.map((e) => ({ seq: String(e.sequence), time: e.time?.toISOString() ?? "", principal: e.principal, method: e.method.replace(/^\/mcko\.v1\./, ""), resource: e.resource, result: e.result + (e.reason ? ` (${e.reason})` : "") })),
        ["seq", "time", "principal", "method", "resource", "result"],
      );
    }),
  );
audit
  .command("verify")
  .description("recompute the audit hash chain and check the signed head; exit 2 when it is broken")
  .action(async () =>
    withClients(async (c) => {
      const r = await call(c.audit.verifyAuditChain, c.audit, {}, 600_000);
      if (json()) printJson(VerifyAuditChainResponse.toJSON(r));
      else if (r.valid) process.stdout.write(`audit chain intact: ${r.recordsChecked} records, signed head at ${r.headSequence}\n`);
      else process.stdout.write(`AUDIT CHAIN BROKEN at record ${r.firstBadSequence}: ${r.problem}\n`);
      if (!r.valid) process.exitCode = 2;
    }),
  );

addHsmCommands(program, { connection: () => resolveConnection(program.opts<ConnectionFlags>()), json });
addKeystoreCommands(program, { connection: () => resolveConnection(program.opts<ConnectionFlags>()), json });

// ---- errors -----------------------------------------------------------------------------------------------------

function fail(err: unknown): never {
  if (err instanceof UsageError || err instanceof CliConfigError || err instanceof ConfigError || err instanceof StartupError || err instanceof HsmError || err instanceof StoreError) {
    process.stderr.write(`mcko: ${err.message}\n`);
  } else if (err && typeof err === "object" && "code" in err && typeof (err as { code: unknown }).code === "number") {
    const d = decodeError(err);
    if (json()) printJson({ error: d }, process.stderr);
    else {
      process.stderr.write(`mcko: ${d.code}${d.reason ? ` ${d.reason}` : ""}: ${d.message}\n`);
      for (const v of d.fieldViolations) process.stderr.write(`  - ${v.field}: ${v.description}\n`);
    }
  } else if (err instanceof Error && "code" in err && typeof (err as NodeJS.ErrnoException).code === "string") {
    process.stderr.write(`mcko: ${err.message}\n`);
  } else {
    process.stderr.write(`mcko: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
}

// A closed pipe (`mcko key list | head`) is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});
program.parseAsync(process.argv).catch(fail);
