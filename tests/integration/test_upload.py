"""Submitting from another machine (issue 22): a real coordinator, its local agent and Docker,
the example experiment's sources uploaded (CONVOY_UPLOAD=1 makes `convoy run` upload even to
this machine's coordinator), results fetched back with `convoy fetch`."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from convoy.client.upload import upload_experiment
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

from .conftest import ROOT, ConvoyEnv, write_experiment
from .test_watch import Watch

pytestmark = pytest.mark.docker

# examples/queue, made quick: two loads, one seed each, fewer customers.
SMALL = {
    "--customers 200000": "--customers 20000",
    "rho: [0.5, 0.8, 0.9]": "rho: [0.5, 0.8]",
    "rep: {range: [0, 4]}": "rep: {range: [0, 1]}",
}
UPLOADED = re.compile(r"uploaded (\d+) of (\d+) files")


def _example(folder: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "queue", folder,
                    ignore=shutil.ignore_patterns("convoy-results", "__pycache__"))  # fmt: skip
    spec = folder / "experiment.yaml"
    text = spec.read_text()
    for old, new in SMALL.items():
        assert old in text, old
        text = text.replace(old, new)
    spec.write_text(text)
    return spec


def _run(env: ConvoyEnv, spec: Path, *args: str, upload: bool = False) -> str:
    environ = dict(env.env(), CONVOY_UPLOAD="1" if upload else "0")
    out = subprocess.run(
        [sys.executable, "-m", "convoy.cli.main", "run", str(spec), *args],
        env=environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stderr


def _summaries(folder: Path) -> dict[str, dict[str, object]]:
    """Each run's summary.json, less its wall-clock time (the one field that differs)."""
    out = {}
    for f in sorted(folder.glob("*/results/summary.json")):
        summary = json.loads(f.read_text())
        summary.pop("wall_seconds", None)
        out[f.parent.parent.name.rsplit(".", 1)[1]] = summary
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_a_copy_the_coordinator_never_saw_runs_uploaded_and_gives_the_same_results(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """The example, uploaded from a copy: the same revision and results as a local run of the
    original; an edit uploads one file; results come back with `convoy fetch`."""
    copy = _example(tmp_path / "copy")
    said = _run(convoy_env, copy, upload=True)
    sent, total = map(int, UPLOADED.search(said).groups())  # type: ignore[union-attr]
    assert sent == total == 4  # experiment.yaml, README.md, sim.py... and nothing else
    kept = convoy_env.home / "results" / "queue" / "queue-1"
    assert f"results in {kept}" in said
    assert not (copy.parent / "convoy-results").exists()  # the results stay on the coordinator
    uploaded = convoy_env.runs("queue-1")

    original = _example(tmp_path / "original")
    _run(convoy_env, original, "--force")  # a local snapshot, run again (not reused)
    local = convoy_env.runs("queue-2")
    assert {r["revision"] for r in local} == {r["revision"] for r in uploaded}
    assert _summaries(original.parent / "convoy-results" / "queue" / "queue-2") == _summaries(kept)
    assert len(_summaries(kept)) == 2

    # `convoy fetch` writes the coordinator's folder here, byte for byte.
    fetched = tmp_path / "fetched"
    out = convoy_env.cli("fetch", "queue-1", str(fetched))
    assert out.returncode == 0, out.stderr
    assert _files(fetched) == _files(kept)
    assert str(fetched / "runs.csv") in out.stdout.splitlines()

    # One file edited: it alone travels, and every run runs again.
    sim = copy.parent / "sim.py"
    sim.write_text(sim.read_text() + "\n# edited\n")
    said = _run(convoy_env, copy, upload=True)
    assert UPLOADED.search(said).groups() == ("1", "4")  # type: ignore[union-attr]
    assert "already done" not in said  # sim.py is in every run's key: they all run

    # Unchanged again: nothing travels, every run is already done (its folder a link to
    # queue-3's); fetched, the reused runs are copies of those files under their own names.
    said = _run(convoy_env, copy, upload=True)
    assert UPLOADED.search(said).groups() == ("0", "4")  # type: ignore[union-attr]
    assert "nothing to run: 2 already done in queue-3" in said
    q4 = tmp_path / "q4"
    out = convoy_env.cli("fetch", "queue-4", str(q4))
    assert out.returncode == 0, out.stderr
    q3 = convoy_env.home / "results" / "queue" / "queue-3"
    assert _summaries(q4) == _summaries(q3) and len(_summaries(q4)) == 2
    assert not any(p.is_symlink() for p in q4.rglob("*"))


def test_fetch_leaves_a_differing_file_unless_forced(convoy_env: ConvoyEnv, tmp_path: Path) -> None:
    """A second fetch writes nothing new; an edited file is kept (status 1) until --force."""
    spec = _example(tmp_path / "exp")
    _run(convoy_env, spec, "--indexes", "0", upload=True)
    dest = tmp_path / "dest"
    assert convoy_env.cli("fetch", "queue-1", str(dest)).returncode == 0
    again = convoy_env.cli("fetch", "queue-1", str(dest))
    assert again.returncode == 0 and again.stdout == ""
    assert "already there" in again.stderr
    csv = dest / "runs.csv"
    first = csv.read_bytes()
    csv.write_text("mine\n")
    kept = convoy_env.cli("fetch", "queue-1", str(dest))
    assert kept.returncode == 1 and "runs.csv" in kept.stderr
    assert csv.read_text() == "mine\n"
    forced = convoy_env.cli("fetch", "queue-1", str(dest), "--force")
    assert forced.returncode == 0 and csv.read_bytes() == first

    # No DIR: ./convoy-results/EXPERIMENT/SUBMISSION, as a local run lays it out.
    here = tmp_path / "here"
    here.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "convoy.cli.main", "fetch", "queue-1"], cwd=here,
        env=dict(convoy_env.env(), PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert _files(here / "convoy-results" / "queue" / "queue-1") == _files(dest)


def test_upload_experiment_against_the_real_coordinator_counts_what_it_sends(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """The library call a Client will use: totals and what was sent, over the real socket."""
    spec = _example(tmp_path / "exp")

    async def main() -> tuple[int, int, int, int]:
        sock = convoy_env.home / "coordinator.sock"
        async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
            stub = pb_grpc.CoordinatorStub(ch)
            first = await upload_experiment(stub, spec)
            (tmp_path / "exp" / "README.md").write_text("changed\n")
            second = await upload_experiment(stub, spec)
            return first.objects_sent, first.objects_total, second.objects_sent, second.bytes_sent

    assert asyncio.run(main()) == (4, 4, 1, len("changed\n"))


def test_watch_uploads_what_changed_and_an_unchanged_save_submits_nothing(
    convoy_env: ConvoyEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`convoy watch` in upload mode: a save reruns on the uploaded revision, naming what
    changed; a save of the same content makes the same revision and submits nothing."""
    monkeypatch.setenv("CONVOY_UPLOAD", "1")  # for the watch process (env.env() copies it)
    (tmp_path / "model.txt").write_text("v0\n")
    spec = write_experiment(tmp_path, """
        name: upw
        image: convoy/busybox:1
        command: 'echo "model $(cat model.txt)"'
        matrix:
          n: [1]
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    w = Watch(convoy_env, spec)
    try:
        w.wait_line(lambda ln: ln == "[upw-1.00] model v0")
        w.wait_line(lambda ln: "upw-1: 1 succeeded" in ln)
        (tmp_path / "model.txt").write_text("v1\n")
        w.wait_line(lambda ln: ln.startswith("watch: upw-2:") and "changed: model.txt" in ln)
        w.wait_line(lambda ln: "upw-2: 1 succeeded" in ln)
        (tmp_path / "model.txt").write_text("v1\n")  # saved again, the same content
        w.wait_line(lambda ln: "makes the same revision: no rerun" in ln)
    finally:
        w.stop()
    kept = convoy_env.home / "results" / "upw" / "upw-2"
    assert [p.read_text() for p in kept.glob("*/output.log")] == ["model v1\n"]
    assert {r["submission"] for r in convoy_env.runs()} == {"upw-1", "upw-2"}
    assert not (tmp_path / "convoy-results").exists()


def test_a_rerun_of_an_uploaded_submission_keeps_its_results_and_keys_on_the_coordinator(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """`convoy rerun` of an uploaded submission: its revision again, its results under the
    coordinator's results folder, each run's key as before (the experiment file left out)."""
    spec = write_experiment(tmp_path, """
        name: upr
        image: convoy/busybox:1
        command: 'test ${n} -eq 1'
        matrix:
          n: [1, 2]
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    environ = dict(convoy_env.env(), CONVOY_UPLOAD="1")
    out = subprocess.run([sys.executable, "-m", "convoy.cli.main", "run", str(spec)],
                         env=environ, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 1, out.stderr  # upr-1.01 fails
    rerun = convoy_env.cli("rerun", "upr-1")
    assert rerun.returncode == 0 and "submitted upr-2: upr-2.01" in rerun.stdout, rerun.stderr
    again = convoy_env.wait_for("upr-2.01", {"failed", "succeeded"})
    [before] = [r for r in convoy_env.runs("upr-1") if r["run"] == "upr-1.01"]
    assert again["results_path"] == str(convoy_env.home / "results/upr/upr-2/upr-2.01")
    assert (again["revision"], again["key"]) == (before["revision"], before["key"])
    assert not (tmp_path / "convoy-results").exists()
