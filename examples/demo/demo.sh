#!/usr/bin/env bash
# MCKO demo (`npm run demo`): installs what is missing, initialises a fresh MCKO home on the embedded defaults
# (software HSM, temp folder), starts the daemon, walks keys through the NIST lifecycle with the `mcko` CLI and
# verifies the audit chain. Leaves nothing running. Set MCKO_DEMO_HOME to keep the home somewhere you choose.
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
trap 'kill -TERM $daemon_pid 2>/dev/null; wait $daemon_pid 2>/dev/null || true' EXIT
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

step "7. every change, and every refusal, is in the hash-chained, signed audit log"
mcko audit list
mcko audit verify

step "done"
echo "home: $home (config $home/config.json, daemon log $log); the daemon stops now."
