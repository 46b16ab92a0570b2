"""How DockerRuntime reads a container's end from `docker inspect`, and its start failures
(no Docker needed)."""

from __future__ import annotations

from convoy.agent.runtime.docker import _state, parse_docker_time, start_failure
from convoy.errors import DiskFull, RuntimeFailure


def _inspect(started: str, finished: str) -> dict[str, object]:
    return {
        "Image": "sha256:abc",
        "State": {"Running": False, "Status": "exited", "ExitCode": 0, "OOMKilled": False,
                  "StartedAt": started, "FinishedAt": finished},
    }  # fmt: skip


def test_a_run_that_ended_at_once_never_has_a_negative_duration() -> None:
    """dockerd stamps StartedAt after the start call returns and FinishedAt from the exit
    event: for a process that ends at once FinishedAt can come first. Seen in CI as a run with
    duration_s < 0; the end is taken as no earlier than the start."""
    state = _state(_inspect("2026-11-23T06:00:00.500000000Z", "2026-11-23T06:00:00.499000000Z"))
    assert state.exit is not None
    assert (
        state.exit.ended_at
        == state.exit.started_at
        == parse_docker_time("2026-11-23T06:00:00.500000000Z")
    )


def test_ordinary_times_are_kept() -> None:
    state = _state(_inspect("2026-11-23T06:00:00.5Z", "2026-11-23T06:00:02.25Z"))
    assert state.exit is not None
    assert state.exit.ended_at - state.exit.started_at == 1.75


def test_the_engines_no_space_left_on_device_is_disk_full() -> None:
    """DockerRuntime tells a full disk from other start failures by the engine's words."""
    full = start_failure("cannot start container c: error mounting: No space left on device")
    other = start_failure("cannot create container c: network convoy-x not found")
    assert isinstance(full, DiskFull) and isinstance(full, RuntimeFailure)
    assert type(other) is RuntimeFailure
