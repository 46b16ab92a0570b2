"""Issue 22's acceptance, whole: a coordinator on `convoy up --listen` (real TLS, its local
agent on the real Docker engine) and a client with a home of its own (as on another machine)
that reaches it only with grpcs:// and a token. `convoy run` of a copy of the example the
coordinator never saw uploads it, runs it and gives the results a run of the original on the
coordinator's own machine gives; a second submission after one edit sends that one file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from convoy.agent.runtime import DockerRuntime

from .conftest import LABEL_PREFIX, remove_container
from .listening import coordinator_up, free_port
from .test_upload import UPLOADED, _example, _summaries

pytestmark = pytest.mark.docker


@dataclass
class Served:
    home: Path  # the coordinator's
    port: int

    def convoy(self, *args: str, home: Path | None = None, **env: str
               ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run(
            [sys.executable, "-m", "convoy.cli.main", *args],
            env={**os.environ, "CONVOY_HOME": str(home or self.home), **env},
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip


@pytest.fixture
def served(docker_runtime: DockerRuntime, busybox_image: str) -> Iterator[Served]:
    from convoy.agent.server import agent_id_for

    folder = Path(tempfile.mkdtemp(prefix="cvl-", dir="/tmp"))  # short: unix sockets
    home = folder / "home"
    home.mkdir(mode=0o700)
    port = free_port()
    args = ["--cpus", "2", "--memory", "4GiB", "--listen", f"127.0.0.1:{port}"]
    try:
        with coordinator_up(home, folder / "up.log", args, dict(os.environ, CONVOY_HOME=str(home))):
            yield Served(home, port)
    finally:
        ident = agent_id_for(home / "agent")
        for c in docker_runtime.client.containers.list(
            all=True, filters={"label": f"{LABEL_PREFIX}agent={ident}"}
        ):
            remove_container(docker_runtime.client.api, c.id)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_remote_client_runs_a_copy_the_coordinator_never_saw_and_gets_its_results(
    served: Served, tmp_path: Path
) -> None:
    out = served.convoy("token", "create", "laptop")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    laptop = tmp_path / "laptop-home"  # the client's CONVOY_HOME: its pins and scan caches
    remote = {"CONVOY_COORDINATOR": f"grpcs://127.0.0.1:{served.port}", "CONVOY_TOKEN": token}

    copy = _example(tmp_path / "elsewhere" / "queue")  # never seen by the coordinator
    out = served.convoy("run", str(copy), home=laptop, **remote)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "trusting coordinator" in out.stderr  # first contact: its certificate pinned
    sent = UPLOADED.search(out.stderr)
    assert sent is not None and sent.group(1) == sent.group(2), out.stderr  # all of it, at first
    files = int(sent.group(2))
    sub = re.search(r"submitted (queue-\d+)", out.stderr)
    assert sub is not None, out.stderr
    assert not (copy.parent / "convoy-results").exists()  # the results stay on the coordinator

    fetched = tmp_path / "fetched"
    out = served.convoy("fetch", sub.group(1), str(fetched), home=laptop, **remote)
    assert out.returncode == 0, out.stdout + out.stderr

    # The original, on the coordinator's machine, over its socket (run again: same key).
    original = _example(tmp_path / "original" / "queue")
    out = served.convoy("run", str(original), "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    local = original.parent / "convoy-results" / "queue"
    (here,) = [p for p in local.iterdir() if p.is_dir()]
    assert _summaries(fetched) == _summaries(here) != {}

    (copy.parent / "sim.py").write_text((copy.parent / "sim.py").read_text() + "# edited\n")
    out = served.convoy("run", str(copy), home=laptop, **remote)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"uploaded 1 of {files} files" in out.stderr

    out = served.convoy("runs", home=laptop, CONVOY_COORDINATOR=remote["CONVOY_COORDINATOR"])
    assert out.returncode == 1 and "refused the call" in out.stderr  # no token: nothing
