#!/usr/bin/env bash
# MCKO demo (`npm run demo`): installs what is missing, initialises a fresh MCKO home on the embedded defaults
# (software HSM, temp folder), starts the daemon, walks keys through the NIST lifecycle with the `mcko` CLI, then
# brings a key born in the HSM to five targets (BYOK): the AWS KMS, Azure Key Vault, Google Cloud KMS and IBM Key
# Protect emulators and a second SoftHSM2 token as a PKCS#11 target. The key is pushed, suspended, reactivated and
# rotated, and every target's copy is checked against the vault's KCV; finally verifies the audit chain. Leaves
# nothing running. Set MCKO_DEMO_HOME to keep the home somewhere you choose.
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

step "2. a PKCS#11 target for later: a second SoftHSM2 token, kept in the home"
# SoftHSM2 reads SOFTHSM2_CONF when a process initialises it: the daemon (which uses the token as a keystore) and the
# checks in clouds.mjs both get this one. The user PIN is kept only in a 0600 file; softhsm2-util, which has no other
# non-interactive way, takes the PINs as arguments for the moment it runs.
token=mcko-demo-target
softhsm_module=/usr/lib/softhsm/libsofthsm2.so
mkdir -m 700 "$home/softhsm2" "$home/softhsm2/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$home/softhsm2/tokens" >"$home/softhsm2/softhsm2.conf"
export SOFTHSM2_CONF="$home/softhsm2/softhsm2.conf"
(umask 077; od -An -tx1 -N12 /dev/urandom | tr -d ' \n' >"$home/target-token.pin")
softhsm2-util --init-token --free --label "$token" --so-pin "$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')" --pin "$(cat "$home/target-token.pin")"

step "3. start the daemon (mutual TLS 1.3 on 127.0.0.1:$port)"
log="$home/mckod.log"
daemon/bin/mcko daemon --config "$home/config.json" >"$home/mckod.out" 2>"$log" &
daemon_pid=$!
# The cloud emulators of step 8 (`npm run emulators`) start now, in the background, so that they are ready by then.
emu_out="$home/emulators.out"
node --import tsx test/emulators/run.ts --only aws,azure,gcp,key-protect --aws-port 0 --azure-port 0 --gcp-port 0 --key-protect-port 0 --state-dir "$home/emulators" >"$emu_out" 2>&1 &
emu_pid=$!
cleanup() {
  kill -TERM $daemon_pid 2>/dev/null; wait $daemon_pid 2>/dev/null || true
  kill -TERM $emu_pid 2>/dev/null; wait $emu_pid 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 300); do
  grep -q "mckod serving" "$home/mckod.out" 2>/dev/null && break
  kill -0 $daemon_pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
grep -q "mckod serving" "$home/mckod.out" || { cat "$log"; echo "the daemon was not serving within 30 s"; exit 1; }
cat "$home/mckod.out"

step "4. a vault and two keys, born in the HSM and stored only wrapped under the master key"
mcko vault create payments --display-name "Payments"
mcko key create payments/card-dek --algorithm AES_256 --label env=demo --rotation-period 90d
mcko key create payments/signing --algorithm EC_P256 --label env=demo
mcko key list payments

step "5. the NIST SP 800-57 lifecycle: suspend, reactivate, rotate"
mcko key state payments/card-dek SUSPENDED
mcko key state payments/card-dek ACTIVE
mcko key rotate payments/card-dek

step "6. a transition NIST forbids is refused (FAILED_PRECONDITION, reason KEY_STATE_TRANSITION_NOT_ALLOWED)"
mcko key state payments/card-dek DESTROYED || echo "(refused, as it should be: ACTIVE keys are deactivated before they are destroyed)"

step "7. destroy: deactivate, then erase the material; the metadata stays for the record"
mcko key destroy payments/signing
mcko -o json key show payments/signing | head -20

step "8. bring your own key to five targets: the AWS KMS, Azure Key Vault, Google Cloud KMS and IBM Key Protect emulators (npm run emulators, started with the daemon) and the PKCS#11 token"
for _ in $(seq 1 600); do
  grep -q '^MCKO_EMULATORS_READY ' "$emu_out" 2>/dev/null && break
  kill -0 $emu_pid 2>/dev/null || { cat "$emu_out"; exit 1; }
  sleep 0.1
done
grep -q '^MCKO_EMULATORS_READY ' "$emu_out" || { cat "$emu_out"; echo "the emulators were not ready within 60 s"; exit 1; }
grep -v '^MCKO_EMULATORS_READY ' "$emu_out"
(umask 077; sed -n 's/^MCKO_EMULATORS_READY //p' "$emu_out" >"$home/emulators.json")
eval "$(node examples/demo/clouds.mjs env "$home/emulators.json")"
# Credentials go in files only the owner can read; the CLI never takes them on the command line and never prints them.
(umask 077
 printf '{"access_key_id": "%s", "secret_access_key": "%s"}\n' "$aws_access_key_id" "$aws_secret_access_key" >"$home/aws-credentials.json"
 printf '{"bearer_token": "%s"}\n' "$azure_token" >"$home/azure-credentials.json"
 printf '{"iam_token": "%s"}\n' "$kp_token" >"$home/key-protect-credentials.json")
mcko keystore add payments/aws --type aws-kms --region "$aws_region" --endpoint "$aws_endpoint" --credentials-file "$home/aws-credentials.json"
mcko keystore add payments/azure --type azure-key-vault --vault-url "$azure_endpoint" --ca-cert "$azure_ca" --credentials-file "$home/azure-credentials.json"
# The emulator speaks plaintext gRPC and takes no credentials (an http:// endpoint says so); for a real project,
# --credentials-file names the service account key JSON Google issues.
mcko keystore add payments/gcp --type gcp-kms --project mcko-demo --location europe-west1 --key-ring payments --endpoint "http://$gcp_endpoint"
mcko keystore add payments/key-protect --type ibm-key-protect --endpoint "$kp_endpoint" --instance-id 6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b --credentials-file "$home/key-protect-credentials.json"
mcko keystore add payments/token --type pkcs11 --module "$softhsm_module" --token-label "$token" --pin-file "$home/target-token.pin" --label-prefix payments/

step "9. a key born in the HSM, pushed to the five targets, wrapped for each in its own import format (\`software step\` names an RSA step that ran outside the HSM)"
mcko key create payments/orders-dek --algorithm AES_256 --label env=demo
# The five pushes run at once (each target has its own import format and round trips); their answers print in order.
pushes=()
for ks in aws azure gcp key-protect token; do
  (mcko distribute payments/orders-dek --keystore "payments/$ks" >"$home/distribute-$ks.out" 2>&1; echo $? >"$home/distribute-$ks.rc") &
  pushes+=($!)
done
wait "${pushes[@]}"
for ks in aws azure gcp key-protect token; do
  cat "$home/distribute-$ks.out"
  [ "$(cat "$home/distribute-$ks.rc")" = 0 ] || { echo "the push to payments/$ks failed"; exit 1; }
done

# What each target holds, read from outside MCKO (examples/demo/clouds.mjs): the emulators' admin endpoints, since
# clouds never return key material or KCVs, and the target token through PKCS#11, by label.
printf '{"key": "orders-dek", "aws": {"admin": "%s"}, "azure": {"admin": "%s"}, "gcp": {"admin": "%s", "cryptoKey": "%s"}, "keyProtect": {"admin": "%s"}, "pkcs11": {"module": "%s", "token": "%s", "pinFile": "%s", "label": "payments/orders-dek"}}\n' \
  "$aws_admin" "$azure_admin" "$gcp_admin" projects/mcko-demo/locations/europe-west1/keyRings/payments/cryptoKeys/orders-dek "$kp_admin" "$softhsm_module" "$token" "$home/target-token.pin" >"$home/targets.json"
# targets ENABLED|DISABLED [KCV]: waits (up to 60 s) until every target shows the key in that state (and, with a KCV,
# holding that material as current), then prints what they hold. The daemon follows the key on its own.
targets() { node examples/demo/clouds.mjs state "$home/targets.json" "$@"; }
targets ENABLED

step "10. suspend the key: the daemon disables every copy (Key Protect: Suspended; the token: encrypt/decrypt off); reactivate: enabled again"
mcko key state payments/orders-dek SUSPENDED
targets DISABLED
mcko key state payments/orders-dek ACTIVE
targets ENABLED

step "11. rotate: new material in the HSM; AWS imports it into the same key, Azure and Google add a version, Key Protect rotates the root key, the token gets a new object under the label"
mcko key rotate payments/orders-dek
daemon/bin/mcko --home "$home" -o json key show payments/orders-dek >"$home/orders-dek.json"
targets ENABLED "$(node -e 'const k = require(process.argv[1]); console.log(k.versions.find((v) => Number(v.versionNumber) === Number(k.primaryVersion)).kcv)' "$home/orders-dek.json")"
mcko distribution list payments/orders-dek

step "12. every target's copy against the vault's KCV (AES: first 3 bytes of AES-ECB(key, zero block); the token computes it with its own object)"
node examples/demo/clouds.mjs kcv "$home/targets.json" "$home/orders-dek.json"

step "13. every change, and every refusal, is in the hash-chained, signed audit log"
mcko audit list
mcko audit verify

step "done"
echo "home: $home (config $home/config.json, daemon log $log, emulators $emu_out, target token $SOFTHSM2_CONF); the daemon and the emulators stop now."
