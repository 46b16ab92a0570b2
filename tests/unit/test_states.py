"""Unit tests for convoy.states: the run lifecycle and its transition rules."""

from __future__ import annotations

import itertools
import re

import pytest

import convoy.states as states_module
from convoy.states import (
    ACTIVE,
    TERMINAL,
    TRANSITIONS,
    InvalidTransition,
    RunState,
    check_transition,
)

S = RunState
ALLOWED = sorted((a, b) for a, targets in TRANSITIONS.items() for b in targets)
DISALLOWED = sorted((a, b) for a in RunState for b in RunState if b not in TRANSITIONS[a])


def test_every_state_has_a_transitions_entry() -> None:
    """TRANSITIONS lists the allowed targets of every state, and only of real states."""
    assert set(TRANSITIONS) == set(RunState)


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_transition_passes(current: RunState, target: RunState) -> None:
    """Every transition listed in TRANSITIONS passes check_transition."""
    check_transition("r1", current, target)  # raises InvalidTransition if not allowed


@pytest.mark.parametrize(("current", "target"), DISALLOWED)
def test_unlisted_transition_raises(current: RunState, target: RunState) -> None:
    """Every transition not listed in TRANSITIONS raises InvalidTransition naming both states."""
    with pytest.raises(InvalidTransition) as info:
        check_transition("r1", current, target)
    assert (info.value.run_id, info.value.current, info.value.target) == ("r1", current, target)
    assert str(current) in str(info.value) and str(target) in str(info.value)


@pytest.mark.parametrize("final", [S.SUCCEEDED, S.FAILED, S.CANCELLED, S.LOST])
@pytest.mark.parametrize("target", list(RunState))
def test_finished_states_go_nowhere(final: RunState, target: RunState) -> None:
    """A run that ended cannot move to any state (not even itself): lost is final too, a
    retry happens before a run is lost, never after."""
    with pytest.raises(InvalidTransition):
        check_transition("r1", final, target)


def test_a_placed_run_shows_its_sync_and_build_then_starts() -> None:
    """starting -> syncing -> building -> starting -> running, and a retry goes back to queued."""
    steps = [S.QUEUED, S.STARTING, S.SYNCING, S.BUILDING, S.STARTING, S.RUNNING, S.QUEUED]
    for a, b in itertools.pairwise(steps):
        check_transition("r1", a, b)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.QUEUED, S.RUNNING),
        (S.QUEUED, S.SUCCEEDED),
        (S.QUEUED, S.LOST),
        (S.RUNNING, S.STARTING),
        (S.RUNNING, S.SYNCING),
        (S.BUILDING, S.SYNCING),
        (S.SUCCEEDED, S.QUEUED),
        (S.FAILED, S.QUEUED),
        (S.CANCELLED, S.RUNNING),
    ],
)
def test_named_disallowed_transitions_raise(current: RunState, target: RunState) -> None:
    """Skipping start (queued -> running), going backwards, or reviving a finished run raises."""
    with pytest.raises(InvalidTransition):
        check_transition("r1", current, target)


def test_invalid_transition_is_a_value_error() -> None:
    """InvalidTransition is a ValueError, so generic handlers catch it."""
    assert issubclass(InvalidTransition, ValueError)


def test_terminal_property() -> None:
    """Exactly succeeded, failed, cancelled and lost are terminal."""
    assert {s for s in RunState if s.terminal} == {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.LOST}
    assert {s for s in RunState if s.terminal} == TERMINAL


def test_holds_host_property() -> None:
    """Exactly syncing, building, starting and running hold an allocation on a host."""
    assert {s for s in RunState if s.holds_host} == {S.SYNCING, S.BUILDING, S.STARTING, S.RUNNING}
    assert {s for s in RunState if s.holds_host} == ACTIVE


def test_no_state_is_both_terminal_and_holding_a_host() -> None:
    """A finished run never holds a host; queued is neither finished nor holding one."""
    assert not TERMINAL & ACTIVE
    assert not S.QUEUED.terminal and not S.QUEUED.holds_host


def test_every_unfinished_state_can_be_cancelled() -> None:
    """The docstring's promise: any unfinished state may go to cancelled."""
    for s in RunState:
        if not s.terminal:
            check_transition("r1", s, S.CANCELLED)


def test_docstring_diagram_mentions_every_state() -> None:
    """The lifecycle diagram in the module docstring names every RunState value."""
    doc = states_module.__doc__ or ""
    assert "::" in doc
    after = doc.split("::", 1)[1].splitlines()[1:]
    # The diagram is the indented block after "::" (blank lines inside it are allowed).
    diagram = []
    for line in after:
        if line.strip() and not line.startswith(" "):
            break
        diagram.append(line)
    words = set(re.findall(r"[a-z]+", "\n".join(diagram)))
    missing = [s.value for s in RunState if s.value not in words]
    assert not missing, f"states missing from the diagram: {missing}"
