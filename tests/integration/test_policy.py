"""The agent's own policy on a real Docker engine (H1, M3): runs execute as an unprivileged user
even when the agent is root, and can still use /work (new files in the sources' folders,
sources rewritten in place), /tmp, their outputs and /inputs; a network no host allows is
refused at submit, naming the file, line and column."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import ConvoyEnv, write_experiment

pytestmark = pytest.mark.docker


@pytest.mark.skipif(os.geteuid() != 0, reason="the agent runs as root only when root runs it")
def test_runs_of_a_root_agent_execute_as_nobody_and_can_use_their_workspace(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """`id -u` in a run is 65534, not 0; the run writes beside and over its sources, in /tmp,
    and reads its inputs; what it made comes back."""
    (tmp_path / "exp" / "data").mkdir(parents=True)
    (tmp_path / "exp" / "data" / "old.txt").write_text("from the sources\n")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "x.txt").write_text("an input\n")
    spec = write_experiment(tmp_path / "exp", """
        name: who
        image: convoy/busybox:1
        command: >-
          id -u > uid.txt && echo new > data/new.txt && echo changed >> data/old.txt &&
          echo scratch > /tmp/t && cat /tmp/t /inputs/ds/x.txt > seen.txt
        inputs: {ds: ../ds}
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 0, out.stdout + out.stderr
    folder = tmp_path / "exp" / "convoy-results" / "who" / "who-1" / "who-1.00"
    assert (folder / "uid.txt").read_text() == "65534\n"
    assert (folder / "data" / "new.txt").read_text() == "new\n"
    assert (folder / "data" / "old.txt").read_text() == "from the sources\nchanged\n"
    assert (folder / "seen.txt").read_text() == "scratch\nan input\n"
    assert (tmp_path / "exp" / "data" / "old.txt").read_text() == "from the sources\n"


def test_a_network_no_host_allows_is_refused_at_submit_with_its_place(
    convoy_env: ConvoyEnv, tmp_path: Path
) -> None:
    """`network: host` reached a listener on the host's loopback; now the agents' default
    policy (none, bridge) refuses it, and the coordinator says so before anything runs."""
    spec = write_experiment(tmp_path, """
        name: nethost
        image: convoy/busybox:1
        command: true
        network: host
    """)  # fmt: skip
    out = convoy_env.cli("run", str(spec))
    assert out.returncode == 2, out
    assert f"{spec}:5:10: network: no host it may use allows 'host'" in out.stderr, out.stderr
    assert "local allows none, bridge" in out.stderr and "Traceback" not in out.stderr
    assert json.loads(convoy_env.cli("runs", "--json").stdout) == []
