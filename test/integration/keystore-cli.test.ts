/**
 * `mcko keystore …`, `mcko distribute` (one key and --all with its progress bar) and `mcko distribution …` against
 * a real daemon and the AWS emulator. Credentials come from a file and are never printed.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { startAwsKmsEmulator } from "../emulators/aws-kms/index.js";
import { startAzureKeyVaultEmulator } from "../emulators/azure-keyvault/index.js";
import { MCKO_BIN, makeHome, startDaemonProcess } from "../support/daemon.js";

const run = promisify(execFile);

test("keystore add/list/show/test/remove, distribute one key and --all, distribution list/show/sync", async (t) => {
  t.timeout(300_000);
  const emu = await startAwsKmsEmulator();
  const home = await makeHome({ reconcileIntervalMs: 200 });
  const daemon = await startDaemonProcess(home);
  const mcko = (...args: string[]) =>
    run(MCKO_BIN, args, { env: { ...process.env, MCKO_HOME: home.dir, MCKO_ADDR: daemon.address } }).then(
      (r) => ({ ...r, code: 0 }),
      (e: { stdout: string; stderr: string; code: number }) => e,
    );
  const outputs: string[] = [];
  const ok = async (...args: string[]) => {
    const r = await mcko(...args);
    outputs.push(r.stdout, r.stderr);
    t.is(r.code, 0, `mcko ${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  try {
    const credFile = join(home.dir, "aws-credentials.json");
    writeFileSync(credFile, JSON.stringify({ access_key_id: emu.accessKeyId, secret_access_key: emu.secretAccessKey }), { mode: 0o600 });
    await ok("vault", "create", "cli");
    const dry = await ok("keystore", "add", "cli/aws", "--type", "aws-kms", "--region", emu.region, "--endpoint", emu.endpoint, "--credentials-file", credFile, "--validate-only");
    t.regex(dry.stdout, /^valid: /);
    await ok("keystore", "add", "cli/aws", "--type", "aws-kms", "--region", emu.region, "--endpoint", emu.endpoint, "--credentials-file", credFile, "--deletion-window-days", "7");
    const listed = JSON.parse((await ok("-o", "json", "keystore", "list", "cli")).stdout) as Array<{ name: string; type: string; hasCredentials: boolean }>;
    t.deepEqual(listed.map((k) => [k.name, k.type, k.hasCredentials]), [["vaults/cli/keystores/aws", "KEYSTORE_TYPE_AWS_KMS", true]]);
    t.regex((await ok("keystore", "show", "cli/aws")).stdout, /stored \(encrypted, write-only\)/);
    t.regex((await ok("keystore", "test", "cli/aws")).stdout, /^ok: /);

    for (const [id, alg] of [["one", "AES_256"], ["two", "HMAC_SHA384"], ["three", "EC_P256"], ["old", "AES_128"]] as const) await ok("key", "create", `cli/${id}`, "--algorithm", alg);
    const one = JSON.parse((await ok("-o", "json", "distribute", "cli/one", "--keystore", "cli/aws")).stdout) as { syncState: string; cloudKeyId: string };
    t.is(one.syncState, "SYNC_STATE_IN_SYNC");
    t.is(emu.admin.key(one.cloudKeyId)?.keyState, "Enabled");

    const all = await mcko("distribute", "--all", "--keystore", "cli/aws");
    outputs.push(all.stdout, all.stderr);
    t.is(all.code, 1, "AES_128 cannot go to AWS: the batch reports it and exits 1");
    t.regex(all.stderr, /distributing \[/, "progress bar on stderr");
    t.regex(all.stdout, /2 distributed, 1 failed, 1 skipped/);
    t.regex(all.stdout, /ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE/);
    const again = await mcko("distribute", "--all", "--keystore", "cli/aws");
    t.regex(again.stdout, /0 distributed, 1 failed, 3 skipped/);

    const dists = JSON.parse((await ok("-o", "json", "distribution", "list", "cli")).stdout) as Array<{ name: string }>;
    t.deepEqual(dists.map((d) => d.name).sort(), ["vaults/cli/keys/one/distributions/aws", "vaults/cli/keys/three/distributions/aws", "vaults/cli/keys/two/distributions/aws"]);
    emu.admin.disableKey(one.cloudKeyId);
    const drifted = await mcko("distribution", "show", "cli/one/aws", "--live");
    t.is(drifted.code, 2, "drift seen live: exit code 2");
    t.regex(drifted.stdout, /DISABLED, the vault wants ENABLED/);
    await ok("distribution", "sync", "cli/one/aws");
    t.is(emu.admin.key(one.cloudKeyId)?.keyState, "Enabled");
    t.is((await mcko("distribution", "show", "cli/one/aws", "--live")).code, 0);

    const inUse = await mcko("keystore", "remove", "cli/aws");
    t.is(inUse.code, 1);
    t.regex(inUse.stderr, /KEYSTORE_IN_USE/);
    await ok("key", "destroy", "cli/one");

    // Azure Key Vault through the same commands (bearer token from the credentials file, the emulator's CA).
    const az = await startAzureKeyVaultEmulator();
    try {
      const azCreds = join(home.dir, "azure-credentials.json");
      writeFileSync(azCreds, JSON.stringify({ bearer_token: az.token }), { mode: 0o600 });
      const caFile = join(home.dir, "azure-ca.pem");
      writeFileSync(caFile, az.caCertPem);
      await ok("keystore", "add", "cli/azure", "--type", "azure-key-vault", "--vault-url", az.endpoint, "--ca-cert", caFile, "--credentials-file", azCreds);
      const pushed = JSON.parse((await ok("-o", "json", "distribute", "cli/three", "--keystore", "cli/azure")).stdout) as { syncState: string; cloudKeyId: string };
      t.is(pushed.syncState, "SYNC_STATE_IN_SYNC");
      t.is(az.admin.key(pushed.cloudKeyId)?.versions[0]?.origin, "byok");
      t.false(outputs.some((o) => o.includes(az.token)), "the bearer token is never printed");
    } finally {
      await az.close();
    }
    t.true(outputs.every((o) => !o.includes(emu.secretAccessKey) && !o.includes(emu.accessKeyId)), "credentials never printed");
  } finally {
    await daemon.stop();
    await emu.close();
    home.cleanup();
  }
});
