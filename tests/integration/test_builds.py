"""Build steps on the local host: incremental across revisions, and a failure stops the runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from convoy.agent.runtime import DockerRuntime, RuntimeFailure

from .conftest import ROOT, ConvoyEnv, write_experiment

pytestmark = pytest.mark.docker

GCC_IMAGE = "convoy/gcc:12"


@pytest.fixture(scope="session")
def gcc_image(docker_runtime: DockerRuntime) -> str:
    """convoy/gcc:12, built offline (images/build.sh gcc, about a minute) when missing."""
    try:
        docker_runtime.image_id(GCC_IMAGE)
    except RuntimeFailure:
        subprocess.run(["bash", str(ROOT / "images" / "build.sh"), "--quiet", "gcc"], check=True)
        docker_runtime.image_id(GCC_IMAGE)
    return GCC_IMAGE


def _runs(sub: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(sub.glob("*/run.json"))]


def test_an_edit_recompiles_one_file_and_the_runs_see_it(
    convoy_env: ConvoyEnv, gcc_image: str, tmp_path: Path
) -> None:
    """examples/des: the first build compiles every file; after editing main.c, the next build
    compiles main.c alone and the runs print the edit; the same revision again builds nothing;
    a file put back to older content is compiled again."""
    model = tmp_path / "des"
    skip = shutil.ignore_patterns("convoy-results", "*.o", "des", "results")
    shutil.copytree(ROOT / "examples" / "des", model, ignore=skip)
    spec = write_experiment(model, """
        name: des
        image: convoy/gcc:12
        build: make
        command: ./des --arrival-rate ${rho} --customers 2000 --seed 1
        matrix:
          rho: [0.5, 0.8]
        resources: {cpus: 1, memory: 256MiB}
    """)  # fmt: skip
    compiles = re.compile(r"^cc .* -c -o (\S+)\.o", re.M)

    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    first = model / "convoy-results/des/des-1"
    assert sorted(compiles.findall((first / "build/local.log").read_text())) == [
        "main", "queue", "rng", "sim"]  # fmt: skip
    assert sorted(p.name for p in (first / "build").iterdir()) == ["local.json", "local.log"]
    assert all(r["state"] == "succeeded" for r in _runs(first))

    main_c = model / "main.c"
    main_c.write_text(main_c.read_text().replace("M/M/%ld queue", "M/M/%ld queue (edited)", 1))
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    second = model / "convoy-results/des/des-2"
    assert compiles.findall((second / "build/local.log").read_text()) == ["main"]
    for r in _runs(second):
        assert "queue (edited)" in (second / str(r["run"]) / "output.log").read_text()
    assert not any(".o" in str(r.get("files", {})) for r in _runs(second))  # build output stays

    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    third = model / "convoy-results/des/des-3"
    assert not list(third.glob("build/*.log"))  # the same revision: nothing built
    assert all(r["state"] == "succeeded" for r in _runs(third))

    # main.c goes back to its first content (whose object file is older than the main.o just
    # built), and queue.c changes: both are compiled, and the runs no longer print the edit.
    shutil.copy(ROOT / "examples" / "des" / "main.c", main_c)
    queue_c = model / "queue.c"
    queue_c.write_text(queue_c.read_text() + "\n/* edited */\n")
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stderr
    fourth = model / "convoy-results/des/des-4"
    assert sorted(compiles.findall((fourth / "build/local.log").read_text())) == ["main", "queue"]
    for r in _runs(fourth):
        assert "queue (edited)" not in (fourth / str(r["run"]) / "output.log").read_text()


def test_a_failed_build_stops_its_runs_with_its_exit_code_and_output(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    spec = write_experiment(tmp_path, """
        name: broken
        image: convoy/busybox:1
        build: "echo compiling; echo 'model.c:3: error: expected ;' >&2; exit 3"
        command: echo this must not run
        matrix:
          i: [1, 2, 3]
        resources: {cpus: 1, memory: 64MiB}
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 1
    sub = tmp_path / "convoy-results/broken/broken-1"
    runs = _runs(sub)
    assert len(runs) == 3
    for r in runs:
        assert (r["state"], r["exit_code"]) == ("failed", 3)
        assert "the build failed on local (the build exited with code 3)" in str(r["reason"])
        assert "model.c:3: error: expected ;" in str(r["reason"])
        assert "this must not run" not in (sub / str(r["run"]) / "output.log").read_text()
    about = json.loads((sub / "build/local.json").read_text())
    assert (about["succeeded"], about["exit_code"], about["made_now"]) == (False, 3, True)
    assert (sub / "build/local.log").read_text() == "compiling\nmodel.c:3: error: expected ;\n"
    logs = convoy_env.cli("logs", "broken-1.build")
    assert logs.returncode == 0 and logs.stdout == (sub / "build/local.log").read_text()
