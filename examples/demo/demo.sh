#!/usr/bin/env bash
# MCKO demo (`npm run demo`): installs what is missing, initialises a fresh MCKO home on the embedded defaults
# (software HSM, temp folder), starts the daemon, walks keys through the NIST lifecycle with the `mcko` CLI, then
# starts the AWS KMS and Azure Key Vault emulators and brings a key born in the HSM to both clouds (BYOK): pushed,
# suspended, reactivated, rotated, and its cloud copies checked against the vault's KCV; finally verifies the audit
# chain. Leaves nothing running. Set MCKO_DEMO_HOME to keep the home somewhere you choose.
set -euo pipefail
cd "$(dirname "$0")/../.."
# MCKO_DEMO_SKIP_SETUP=1 (used by the test suite, which has already installed everything): no install step, so
# the demo can never reinstall node_modules under tests that are running.
[ "${MCKO_DEMO_SKIP_SETUP:-}" = 1 ] || bash .ci/setup.sh

home=${MCKO_DEMO_HOME:-$(mktemp -d)/mcko-home}
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
mcko() { echo "\$ mcko $*"; daemon/bin/mcko --home "$home" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. mcko init: a CA, server and admin certificates, a master key (software HSM) and a config file"
daemon/bin/mcko init "$home" --listen "127.0.0.1:$port"

step "2. start the daemon (mutual TLS 1.3 on 127.0.0.1:$port)"
log="$home/mckod.log"
daemon/bin/mcko daemon --config "$home/config.json" >"$home/mckod.out" 2>"$log" &
daemon_pid=$!
emu_pid=
cleanup() {
  kill -TERM $daemon_pid 2>/dev/null; wait $daemon_pid 2>/dev/null || true
  if [ -n "$emu_pid" ]; then kill -TERM $emu_pid 2>/dev/null; wait $emu_pid 2>/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  grep -q "mckod serving" "$home/mckod.out" 2>/dev/null && break
  kill -0 $daemon_pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
cat "$home/mckod.out"

step "3. a vault and two keys, born in the HSM and stored only wrapped under the master key"
mcko vault create payments --display-name "Payments"
mcko key create payments/card-dek --algorithm AES_256 --label env=demo --rotation-period 90d
mcko key create payments/signing --algorithm EC_P256 --label env=demo
mcko key list payments

step "4. the NIST SP 800-57 lifecycle: suspend, reactivate, rotate"
mcko key state payments/card-dek SUSPENDED
mcko key state payments/card-dek ACTIVE
mcko key rotate payments/card-dek

step "5. a transition NIST forbids is refused (FAILED_PRECONDITION, reason KEY_STATE_TRANSITION_NOT_ALLOWED)"
mcko key state payments/card-dek DESTROYED || echo "(refused, as it should be: ACTIVE keys are deactivated before they are destroyed)"

step "6. destroy: deactivate, then erase the material; the metadata stays for the record"
mcko key destroy payments/signing
mcko -o json key show payments/signing | head -20

step "7. bring your own key to two clouds: start the AWS KMS and Azure Key Vault emulators (npm run emulators)"
emu_out="$home/emulators.out"
node --import tsx test/emulators/run.ts --only aws,azure --aws-port 0 --azure-port 0 --state-dir "$home/emulators" >"$emu_out" 2>&1 &
emu_pid=$!
until grep -q '^MCKO_EMULATORS_READY ' "$emu_out" 2>/dev/null; do
  kill -0 $emu_pid 2>/dev/null || { cat "$emu_out"; exit 1; }
  sleep 0.1
done
grep -v '^MCKO_EMULATORS_READY ' "$emu_out"
ready=$(sed -n 's/^MCKO_EMULATORS_READY //p' "$emu_out")
emu() { node -e 'console.log(process.argv[2].split(".").reduce((o, k) => o[k], JSON.parse(process.argv[1])))' "$ready" "$1"; }
# Credentials go in files only the owner can read; the CLI never takes them on the command line and never prints them.
(umask 077
 printf '{"access_key_id": "%s", "secret_access_key": "%s"}\n' "$(emu aws-kms.accessKeyId)" "$(emu aws-kms.secretAccessKey)" >"$home/aws-credentials.json"
 printf '{"bearer_token": "%s"}\n' "$(emu azure-keyvault.token)" >"$home/azure-credentials.json")
mcko keystore add payments/aws --type aws-kms --region "$(emu aws-kms.region)" --endpoint "$(emu aws-kms.endpoint)" --credentials-file "$home/aws-credentials.json"
mcko keystore add payments/azure --type azure-key-vault --vault-url "$(emu azure-keyvault.endpoint)" --ca-cert "$(emu azure-keyvault.caCertPath)" --credentials-file "$home/azure-credentials.json"

step "8. a key born in the HSM, pushed to both clouds (wrapped for each cloud inside the HSM, never in the clear)"
mcko key create payments/orders-dek --algorithm AES_256 --label env=demo
mcko distribute payments/orders-dek --keystore payments/aws
mcko distribute payments/orders-dek --keystore payments/azure

# The clouds never return key material or KCVs: the emulators' admin endpoints show what they hold.
aws_admin=$(emu aws-kms.admin)
az_admin=$(emu azure-keyvault.admin)
# cloud_state ENABLED|DISABLED [KCV]: waits (up to 60 s) until both clouds show the key in that state (and, with a
# KCV, holding that material as current), then prints what they hold. The daemon follows the key on its own.
cloud_state() {
  node --input-type=module -e '
    const [awsAdmin, azAdmin, want, kcv] = process.argv.slice(1);
    const get = async (u) => { const r = await fetch(u); if (!r.ok) throw new Error(`${u}: ${r.status}`); return r.json(); };
    const enabled = want === "ENABLED";
    const until = Date.now() + 60_000;
    for (;;) {
      const aws = await get(`${awsAdmin}/${encodeURIComponent("alias/orders-dek")}`);
      const az = await get(`${azAdmin}/orders-dek`);
      const latest = az.versions.find((v) => v.version === az.latestVersion);
      const done = aws.enabled === enabled && az.versions.every((v) => v.enabled === enabled) && (!kcv || (aws.kcv === kcv && latest.kcv === kcv));
      if (done || Date.now() > until) {
        console.log(`  AWS KMS emulator:         key ${aws.keyId} is ${aws.keyState}`);
        console.log(`  Azure Key Vault emulator: key orders-dek, versions ${az.versions.map((v) => v.enabled ? "enabled" : "disabled").join(", ")}`);
        if (!done) { console.log(`the clouds did not reach ${want}${kcv ? ` with KCV ${kcv}` : ""}`); process.exit(1); }
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  ' "$aws_admin" "$az_admin" "$@"
}
cloud_state ENABLED

step "9. suspend the key: the daemon disables both cloud copies; reactivate: enabled again"
mcko key state payments/orders-dek SUSPENDED
cloud_state DISABLED
mcko key state payments/orders-dek ACTIVE
cloud_state ENABLED

step "10. rotate: new material in the HSM; AWS imports it into the same key, Azure adds a version"
mcko key rotate payments/orders-dek
cloud_state ENABLED "$(daemon/bin/mcko --home "$home" -o json key show payments/orders-dek | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { const k = JSON.parse(s); console.log(k.versions.find((v) => v.versionNumber === k.primaryVersion).kcv); })')"
mcko distribution list payments/orders-dek

step "11. the cloud copies against the vault's KCV (AES: first 3 bytes of AES-ECB(key, zero block))"
daemon/bin/mcko --home "$home" -o json key show payments/orders-dek >"$home/orders-dek.json"
node --input-type=module -e '
  import { readFileSync } from "node:fs";
  const [awsAdmin, azAdmin, keyFile] = process.argv.slice(1);
  const key = JSON.parse(readFileSync(keyFile, "utf8"));
  const get = async (u) => { const r = await fetch(u); if (!r.ok) throw new Error(`${u}: ${r.status}`); return r.json(); };
  const aws = await get(`${awsAdmin}/${encodeURIComponent("alias/orders-dek")}`);
  const az = await get(`${azAdmin}/orders-dek`);
  const vault = new Map(key.versions.map((v) => [v.versionNumber, v.kcv]));
  const primary = vault.get(Number(key.primaryVersion));
  const azLatest = az.versions.find((v) => v.version === az.latestVersion);
  const rows = [
    ["vault (HSM), primary version " + key.primaryVersion, primary],
    ...[...vault].map(([n, kcv]) => [`vault (HSM), version ${n}`, kcv]),
    ["AWS KMS emulator, current material", aws.kcv],
    ...aws.materials.map((m) => [`AWS KMS emulator, material ${m.keyMaterialId.slice(0, 8)} (${m.state})`, m.kcv]),
    ["Azure emulator, latest version", azLatest.kcv],
    ...az.versions.map((v) => [`Azure emulator, version ${v.version.slice(0, 8)}`, v.kcv]),
  ];
  for (const [what, kcv] of rows) console.log(`  ${what.padEnd(52)} KCV ${kcv}`);
  const same = (a, b) => a.length === b.length && a.every((x) => b.includes(x));
  const ok = aws.kcv === primary && azLatest.kcv === primary && same(aws.materials.map((m) => m.kcv), [...vault.values()]) && same(az.versions.map((v) => v.kcv), [...vault.values()]);
  console.log(ok ? "cloud copies match the vault: both clouds hold every version, current = the vault'"'"'s primary" : "MISMATCH between the clouds and the vault");
  process.exit(ok ? 0 : 1);
' "$aws_admin" "$az_admin" "$home/orders-dek.json"

step "12. every change, and every refusal, is in the hash-chained, signed audit log"
mcko audit list
mcko audit verify

step "done"
echo "home: $home (config $home/config.json, daemon log $log, emulators $emu_out); the daemon and the emulators stop now."
