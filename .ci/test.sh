#!/usr/bin/env bash
# The whole test suite (`npm test`): installs what is missing, then runs every ava test under test/ and ends with
# a plain `N passed, N failed` line. Extra arguments go to ava (e.g. a file to run).
set -uo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export CHECKPOINT_DISABLE=1
npx ava --tap "$@" | node .ci/tap-summary.mjs
codes=("${PIPESTATUS[@]}")
[ "${codes[0]}" -eq 0 ] && [ "${codes[1]}" -eq 0 ]
