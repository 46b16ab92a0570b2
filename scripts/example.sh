#!/usr/bin/env bash
# Run the example experiment end to end: an M/M/1 queue simulation at three loads, four seeds
# each (examples/queue), then show where the results are, and their metrics.
# usage: bash scripts/example.sh [convoy run options...]
# env:   CONVOY_SKIP_SETUP=1 skips the setup step.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

experiment=examples/queue/experiment.yaml
results=examples/queue/convoy-results/queue

rc=0
.venv/bin/convoy run "$experiment" "$@" || rc=$?
echo
if [[ $rc -eq 2 ]]; then
    echo "example: convoy rejected $experiment (exit status 2)" >&2
    exit 2
fi

# the newest submission folder holds this run's results
latest=""
if [[ -d "$results" ]]; then
    latest=$(find "$results" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' \
        | sort -rn | sed -n '1s/^[^ ]* //p')
fi
if [[ -z "$latest" ]]; then
    echo "example: no results under $results/ (convoy exit status $rc)" >&2
    exit $((rc == 0 ? 1 : rc))
fi

echo "results: $latest/"
echo "  one folder per run (run.json, output.log, results/summary.json), and runs.csv"
# shellcheck disable=SC2012  # a human-readable listing of run ids
ls -C "$latest" | sed 's/^/    /'
if [[ -f "$latest/runs.csv" ]]; then
    echo "runs.csv:"
    head -n 6 "$latest/runs.csv" | sed 's/^/    /'
    lines=$(wc -l <"$latest/runs.csv")
    if [[ $lines -gt 6 ]]; then echo "    ... ($((lines - 1)) runs)"; fi
fi
first_summary=$(find "$latest" -path '*/results/summary.json' -print -quit)
if [[ -n "$first_summary" ]]; then
    echo "e.g. $first_summary"
fi
echo "the metrics the experiment declares, a row per run (convoy results queue --latest; add"
echo "  --plot mean_wait --by rho -o plot.png to draw them):"
.venv/bin/convoy results queue --latest 2>/dev/null | sed 's/^/    /' || true
if [[ $rc -ne 0 ]]; then
    echo "example: some runs failed (convoy exit status $rc)" >&2
fi
exit "$rc"
