"""What the coordinator keeps about submissions and runs: frozen records, changed by replacement."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from convoy.coordinator.runs.identity import Memo
from convoy.spec import Limits, ParamValue, Resources
from convoy.states import DEFAULT_INFRA_RETRIES, Reason, RunState, check_transition


@dataclass(frozen=True)
class SubmissionRecord:
    id: str
    experiment: str
    seq: int
    spec_path: str
    spec_yaml: str
    source_dir: str
    results_dir: str  # <results>/<experiment>/<submission>/
    revision: str
    priority: int
    created_at: float
    total: int


@dataclass(frozen=True)
class RunRecord:
    id: str
    submission_id: str
    experiment: str
    index: int
    params: dict[str, ParamValue]
    command: str | tuple[str, ...]
    env: dict[str, str]
    image: str
    resources: Resources
    retries: int
    timeout_seconds: float
    network: str
    outputs: tuple[str, ...]
    revision: str
    results_path: str
    priority: int
    seq: int
    state: RunState = RunState.QUEUED
    attempt: int = 0
    host: str = ""
    exit_code: int | None = None
    created_at: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    reason: str = ""
    image_id: str = ""
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> its revision
    code: Reason | None = None  # why it ended (or why its last attempt did); None: not yet
    infra_retries: int = DEFAULT_INFRA_RETRIES  # the platform's failures it may be retried for
    app_failures: int = 0  # attempts that failed by the application (against `retries`)
    infra_failures: int = 0  # attempts that failed by the platform (against `infra_retries`)
    limits: Limits = field(default_factory=Limits)  # caps on what it may leave
    key: str = ""  # what determines its result, hashed (runs/identity.py); "": stored before keys
    key_parts: dict[str, str] = field(default_factory=dict)  # each part's digest
    memo: Memo | None = None  # why it ran, or whose result it reuses; None: stored before keys

    @property
    def reused_from(self) -> str:
        """The run whose result this one is ("": it ran, or runs, itself)."""
        return self.memo.reuse if self.memo is not None else ""

    @property
    def attempt_id(self) -> str:
        return attempt_id(self.id, self.attempt)

    def moved(self, to: RunState, reason: str, **changes: Any) -> RunRecord:
        """The record after a lifecycle transition (validated)."""
        check_transition(self.id, self.state, to)
        return evolve(self, state=to, reason=reason, **changes)

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=False)


_RUN_FIELDS = frozenset(f.name for f in fields(RunRecord))


def evolve(run: RunRecord, **changes: Any) -> RunRecord:
    """dataclasses.replace for RunRecord, without running __init__ on every field again: the
    lifecycle makes one per change, a hundred thousand when a sweep is cancelled."""
    unknown = changes.keys() - _RUN_FIELDS
    if unknown:
        raise TypeError(f"RunRecord has no fields {sorted(unknown)}")
    new = object.__new__(RunRecord)
    new.__dict__.update(run.__dict__)
    new.__dict__.update(changes)
    return new


def over_limits(run: RunRecord, over: str) -> RunRecord:
    """A run that succeeded but left more than its limits allow: failed, code output_limit
    (never retried: it would leave as much again). What the collector writes in run.json, and
    the lifecycle stores."""
    return evolve(run, state=RunState.FAILED, code=Reason.OUTPUT_LIMIT,
                  reason=f"{run.reason}, but {over} (see run.json's not_collected)")  # fmt: skip


def attempt_id(run_id: str, attempt: int) -> str:
    """The id of attempt number `attempt` of a run, on its host."""
    return f"{run_id}-a{attempt}"
