#!/usr/bin/env bash
# Refresh the locks of exact versions that scripts/setup.sh installs (and CI tests):
#   lock/runtime.txt   what convoy needs to run (pyproject.toml's dependencies)
#   lock/dev.txt       the same versions, plus the dev tools (the `dev` extra)
# Each pins every distribution, with the sha256 of every file PyPI has for that version, so a
# fresh machine installs what CI tested, whatever the index serves by then. Run this after a
# change to pyproject.toml's dependencies, or to move to newer releases; review the diff, run
# the tests, and commit the locks with the change.
#
# usage: bash scripts/lock.sh            newest versions pyproject.toml allows
#        bash scripts/lock.sh --keep     keep the versions locked now where they still fit
# Resolves against PyPI (or PIP_INDEX_URL), ignoring pip configuration files, so a machine's
# local wheel folders and mirrors cannot leave their own files' hashes in the lock.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PIP_TOOLS=pip-tools==7.7.0

upgrade=(--upgrade)
case "${1:-}" in
    --keep) upgrade=() ;;
    "") ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scripts/lock.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
esac

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
index_only() { env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null "$@"; }
index_only "$tools/venv/bin/python" -m pip install -q --disable-pip-version-check "$PIP_TOOLS"

compile() {
    index_only "$tools/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
        --no-emit-index-url --no-emit-find-links "${upgrade[@]}" "$@" pyproject.toml
}
mkdir -p lock
compile --output-file lock/runtime.txt
# The dev lock takes the runtime lock's versions as they are: both describe one environment.
compile --extra dev --constraint lock/runtime.txt --output-file lock/dev.txt
rm -rf convoy.egg-info  # pip-compile's metadata build leaves it
echo "locked: $(grep -c '==' lock/runtime.txt) runtime and $(grep -c '==' lock/dev.txt) dev distributions"
