"""The contract every ContainerRuntime keeps, run against the fake and against Docker.

Where these pass for both, a test that uses the fake (unit tests, simulated fleets, fault
tests that SIGKILL agents) says something about the agent on Docker. Behaviour only one of
them has is tested beside it: tests/unit/test_fake_runtime.py, tests/integration/test_runtime.py.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from convoy.agent.runtime import LABEL_PREFIX, RuntimeFailure

from .conftest import MISSING_IMAGE, Behaviour, Subject


def output(subject: Subject, attempt_dir: str) -> str:
    return (subject.root / attempt_dir / "log" / "output.log").read_text()


def test_start_then_wait_gives_the_exit_code_and_the_output(subject: Subject) -> None:
    """start, then wait: exit 0, not OOM, and every line printed is in logdir/output.log."""
    rt = subject.runtime
    spec = subject.spec(Behaviour(duration=0.2, lines=("line 1", "line 2", "line 3")))
    before = time.time()
    handle = rt.start(spec)
    assert (spec.logdir / "output.log").exists()
    ex = rt.wait(handle)
    assert (ex.exit_code, ex.oom_killed) == (0, False)
    assert (spec.logdir / "output.log").read_text() == "line 1\nline 2\nline 3\n"
    assert before - 2 < ex.started_at <= ex.ended_at < time.time() + 2
    assert ex.image_id == rt.image_id(spec.image)
    state = rt.state(handle)
    assert (state.status, state.running, state.exit) == ("exited", False, ex)


def test_a_non_zero_exit_code_is_reported(subject: Subject) -> None:
    """A run that exits 3 is reported by wait and by state as exit code 3."""
    rt = subject.runtime
    handle = rt.start(subject.spec(Behaviour(exit_code=3)))
    assert rt.wait(handle).exit_code == 3
    state = rt.state(handle)
    assert state.exit is not None and state.exit.exit_code == 3


def test_stop_ends_a_running_container(subject: Subject) -> None:
    """stop ends a running container at once: exit 143 (SIGTERM), state no longer running."""
    rt = subject.runtime
    handle = rt.start(subject.spec(Behaviour(duration=60)))
    assert rt.state(handle).running
    t0 = time.monotonic()
    rt.stop(handle, 10)
    ex = rt.wait(handle)
    assert time.monotonic() - t0 < 5
    assert ex.exit_code == 143
    state = rt.state(handle)
    assert (state.running, state.status, state.exit) == (False, "exited", ex)


def test_stop_and_remove_of_an_ended_or_removed_container_are_no_ops(subject: Subject) -> None:
    """stop of an ended container keeps its exit; stop and remove of a removed one do nothing."""
    rt = subject.runtime
    handle = rt.start(subject.spec(Behaviour(exit_code=2)))
    ex = rt.wait(handle)
    rt.stop(handle, 1)
    assert rt.state(handle).exit == ex
    rt.remove(handle)
    rt.remove(handle)
    rt.stop(handle, 1)


def test_remove_then_state_raises_runtime_failure(subject: Subject) -> None:
    """After remove (also of a running container), state and wait raise RuntimeFailure at once."""
    rt = subject.runtime
    handle = rt.start(subject.spec(Behaviour(duration=60)))
    rt.remove(handle)
    t0 = time.monotonic()
    with pytest.raises(RuntimeFailure):
        rt.state(handle)
    with pytest.raises(RuntimeFailure):
        rt.wait(handle)
    assert time.monotonic() - t0 < 5
    assert rt.recover(handle.labels[f"{LABEL_PREFIX}agent"]) == []


def test_starting_the_same_attempt_twice_gives_the_same_container(subject: Subject) -> None:
    """A repeated start of one attempt, also by a new runtime, returns the first container."""
    rt = subject.runtime
    spec = subject.spec(Behaviour(duration=0.5, lines=("once",)))
    first = rt.start(spec)
    second = rt.start(spec)
    assert first == second
    assert subject.restarted().start(spec) == first
    assert rt.wait(second).exit_code == 0
    assert (spec.logdir / "output.log").read_text() == "once\n"


def test_recover_from_a_new_runtime_finds_this_agents_containers_only(subject: Subject) -> None:
    """A new runtime recovers this agent's ended and running containers (oldest first) only."""
    rt = subject.runtime
    mine, other = subject.agent(), subject.agent()
    ended = rt.start(subject.spec(Behaviour(), agent=mine))
    rt.wait(ended)
    time.sleep(1.1)  # Docker orders by creation time in whole seconds
    running = rt.start(subject.spec(Behaviour(duration=60), agent=mine))
    theirs = rt.start(subject.spec(Behaviour(duration=60), agent=other))
    restarted = subject.restarted()
    assert restarted.recover(mine) == [ended, running]
    assert restarted.recover(other) == [theirs]
    assert restarted.recover("contract-nobody") == []
    assert restarted.state(running).running
    assert not restarted.state(ended).running


def test_a_container_keeps_running_across_an_agent_restart(subject: Subject) -> None:
    """A container outlives its runtime: wait on the handle a new one recovers gives its exit."""
    spec = subject.spec(Behaviour(duration=1.5, exit_code=5, lines=("started",)))
    handle = subject.runtime.start(spec)
    restarted = subject.restarted()
    (recovered,) = restarted.recover(spec.agent_id)
    assert recovered == handle
    assert restarted.state(recovered).running
    ex = restarted.wait(recovered)
    assert ex.exit_code == 5
    assert ex.ended_at - ex.started_at >= 1.0
    assert (spec.logdir / "output.log").read_text() == "started\n"


def test_a_missing_image_raises_runtime_failure_naming_it(subject: Subject) -> None:
    """Starting with an image the host lacks raises RuntimeFailure naming it; nothing is left."""
    rt = subject.runtime
    spec = subject.spec(Behaviour())
    with pytest.raises(RuntimeFailure, match=MISSING_IMAGE):
        rt.start(replace(spec, image=MISSING_IMAGE))
    with pytest.raises(RuntimeFailure, match=MISSING_IMAGE):
        rt.image_id(MISSING_IMAGE)
    assert rt.has_image(MISSING_IMAGE) == ""
    assert rt.recover(spec.agent_id) == []


def test_has_image_gives_the_id_image_id_gives(subject: Subject) -> None:
    """A present image: has_image and image_id give one id, a sha256 one."""
    rt = subject.runtime
    assert rt.has_image(subject.image) == rt.image_id(subject.image)
    assert rt.image_id(subject.image).startswith("sha256:")
    assert rt.version()


def test_a_run_over_its_memory_limit_is_oom_killed(subject: Subject) -> None:
    """A run that goes over its memory limit ends with exit 137 and oom_killed."""
    rt = subject.runtime
    ex = rt.wait(rt.start(subject.spec(Behaviour(oom=True))))
    assert (ex.exit_code, ex.oom_killed) == (137, True)


def test_files_the_run_writes_appear_in_its_workdir(subject: Subject) -> None:
    """Files a run writes in /work are in spec.workdir once it has ended."""
    rt = subject.runtime
    files = (("result.txt", "42\n"), ("deep/er/table.csv", "a,b\n1,2\n"))
    spec = subject.spec(Behaviour(files=files))
    assert rt.wait(rt.start(spec)).exit_code == 0
    assert {p: (spec.workdir / p).read_text() for p, _ in files} == dict(files)


def test_the_handle_carries_the_attempt_and_the_convoy_labels(subject: Subject) -> None:
    """The handle names its attempt and carries the convoy.* labels recover finds it by."""
    attempt = f"labels-{uuid.uuid4().hex[:8]}"
    spec = subject.spec(Behaviour(), attempt=attempt)
    handle = subject.runtime.start(spec)
    assert handle.attempt_id == attempt
    assert handle.container_id
    assert handle.labels == {
        "convoy.managed": "1",
        "convoy.agent": spec.agent_id,
        "convoy.attempt": attempt,
        "convoy.run": f"run-{attempt}",
        "convoy.submission": "sub-1",
        "convoy.experiment": "contract",
    }
