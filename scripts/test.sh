#!/usr/bin/env bash
# Run convoy's tests: scripts/setup.sh (installs whatever is missing), then pytest in .venv.
# usage: bash scripts/test.sh [pytest args...]     e.g. bash scripts/test.sh -q tests/unit
# env:   CONVOY_SKIP_SETUP=1 skips the setup step.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
    # pytest's exit status 5: no tests were collected. Not a failure, but never silent.
    echo "convoy: pytest collected no tests" >&2
    exit 0
fi
exit "$rc"
