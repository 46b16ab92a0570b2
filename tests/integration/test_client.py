"""A script that uses only convoy.Client (issue 22): against a real coordinator, agent and
Docker, it submits the example, follows its events, waits for it, reads a run's log, reads
the results as a DataFrame, and cancels another submission."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ConvoyEnv

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    from convoy import Client

    example, folder = sys.argv[1], sys.argv[2]
    with Client() as c:
        sub = c.submit(example)
        seen, ended = set(), {}
        for ev in c.events(sub.submission_id):
            seen.add(ev.run.state)
            if ev.run.terminal:
                ended[ev.run.id] = ev.run.state
            if len(ended) == len(sub.runs):
                break
        runs = c.wait(sub.submission_id, timeout=600)
        log = c.log(runs[0].id).decode()
        df = c.results("queue").dataframe()
        sleeper = c.submit({"name": "sleeper", "image": "convoy/busybox:1",
                            "command": "sleep 300", "resources": {"cpus": 1, "memory": "16MiB"}},
                           sources=folder)
        cancelled = c.cancel(sleeper.submission_id)
        after = c.wait(sleeper.submission_id, timeout=120)
        print(json.dumps({
            "total": len(sub.runs), "seen": sorted(seen),
            "states": sorted({r.state for r in runs}), "log": log,
            "rows": len(df), "columns": list(df.columns),
            "mean_wait": [float(x) for x in df["metric.mean_wait"]],
            "cancelled": cancelled, "sleeper": [r.state for r in after],
        }))
""")


def test_a_script_drives_the_coordinator_through_the_client_alone(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    example = tmp_path / "queue"
    shutil.copytree(ROOT / "examples" / "queue", example)
    (tmp_path / "empty").mkdir()
    script = tmp_path / "drive.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), str(example / "experiment.yaml"), str(tmp_path / "empty")],
        env=dict(convoy_env.env(), PYTHONPATH=str(ROOT)),  # this checkout's convoy
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["total"] == 12
    assert got["states"] == ["succeeded"]
    assert "succeeded" in got["seen"]
    assert "P(wait > 0)" in got["log"]
    assert got["rows"] == 12
    assert {"param.rho", "param.rep", "metric.mean_wait", "state"} <= set(got["columns"])
    assert all(w > 0 for w in got["mean_wait"])
    assert len(got["cancelled"]) == 1
    assert got["sleeper"] == ["cancelled"]
