"""`convoy results`: metrics declared in the experiment file, read by a real coordinator from
what real runs (Docker) wrote and printed, tabled and drawn via the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from .conftest import ConvoyEnv, write_experiment

pytestmark = pytest.mark.docker

SPEC = """
    name: tabled
    image: convoy/busybox:1
    command: |
      mkdir -p out
      echo '{"score": {"mean": ${rho}}, "n": ${rep}}' > out/s.json
      printf 't,served\\n1,1\\n2,%s\\n' ${rep}0 > out/s.csv
      echo "utilisation 0.${rep}5"
      echo "utilisation 0.${rep}6 (the last one counts)"
    matrix:
      rho: [0.5, 2]
      rep: [1, 2]
    resources: {cpus: 1, memory: 64MiB}
    metrics:
      score: {file: out/s.json, key: score.mean}
      served: {file: out/s.csv, column: served}
      util: {output: 'utilisation (?P<value>[0-9.]+)'}
      gone: {file: out/none.json, key: x}
"""


def results(env: ConvoyEnv, *args: str) -> str:
    out = env.cli("results", "tabled", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def rows(env: ConvoyEnv, *args: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(results(env, "--format", "csv", *args))))


def test_the_table_has_each_run_s_parameters_and_metrics(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    spec = write_experiment(tmp_path / "exp", SPEC)
    first = convoy_env.cli("run", "-q", str(spec))
    assert first.returncode == 0, first.stdout + first.stderr

    got = rows(convoy_env)
    assert [(r["run"], r["param.rho"], r["param.rep"], r["metric.score"], r["metric.served"],
             r["metric.util"], r["metric.gone"], r["state"]) for r in got] == [
        ("tabled-1.00", "0.5", "1", "0.5", "10", "0.16", "", "succeeded"),
        ("tabled-1.01", "0.5", "2", "0.5", "20", "0.26", "", "succeeded"),
        ("tabled-1.02", "2", "1", "2", "10", "0.16", "", "succeeded"),
        ("tabled-1.03", "2", "2", "2", "20", "0.26", "", "succeeded"),
    ]  # fmt: skip
    assert all(r["host"] == "local" and r["revision"] and r["duration_s"] for r in got)

    as_json = json.loads(results(convoy_env, "--format", "json"))
    assert as_json[3]["metrics"] == {"score": 2, "served": 20, "util": 0.26, "gone": None}
    assert as_json[3]["metrics_missing"] == {
        "gone": "out/none.json: no such file in the run's results"}  # fmt: skip
    kept = json.loads((Path(as_json[3]["results_path"]) / "run.json").read_text())
    assert kept["metrics"] == as_json[3]["metrics"]  # what the coordinator wrote beside it

    # The same again: already done, every run a link to the first's; each is a row too.
    again = convoy_env.cli("run", "-q", str(spec))
    assert again.returncode == 0 and "4 already done in tabled-1" in again.stderr, again.stderr
    assert len(rows(convoy_env)) == 8
    latest = rows(convoy_env, "--latest")
    assert [(r["run"], r["metric.served"], r["reused_from"]) for r in latest] == [
        ("tabled-2.00", "10", "tabled-1.00"), ("tabled-2.01", "20", "tabled-1.01"),
        ("tabled-2.02", "10", "tabled-1.02"), ("tabled-2.03", "20", "tabled-1.03"),
    ]  # fmt: skip
    picked = rows(convoy_env, "--latest", "--where", "rho=2", "--where", "rep=1")
    assert [r["run"] for r in picked] == ["tabled-2.02"]

    table = convoy_env.cli("results", "tabled", "--latest")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:7] == ["RUN", "rho", "rep", "score", "served",
                                                        "util", "gone"]  # fmt: skip
    assert "gone: 4 runs: out/none.json: no such file in the run's results" in table.stderr

    for bad, says in [
        (("nope",), "no runs of experiment 'nope'; the experiments: tabled"),
        (("tabled", "--where", "rho=7"), "no run has rho=7; its values: 0.5, 2"),
    ]:
        out = convoy_env.cli("results", *bad)
        assert out.returncode == 2 and says in out.stderr, out.stderr


def test_plot_draws_a_png(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is optional: the plot needs it")
    spec = write_experiment(tmp_path / "exp", SPEC)
    assert convoy_env.cli("run", "-q", str(spec)).returncode == 0
    png = tmp_path / "plot.png"
    out = convoy_env.cli("results", "tabled", "--plot", "served", "--by", "rep", "--hue", "rho",
                         "-o", str(png))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "served by rep, 4 points" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
