"""Domain records <-> protobuf messages of the Coordinator API. The only module that converts."""

from __future__ import annotations

import json

from convoy.coordinator.results.table import Row
from convoy.coordinator.runs.records import RunRecord
from convoy.spec import Resources
from convoy.v1 import common_pb2
from convoy.v1 import coordinator_pb2 as pb

# Trailing metadata of a build's Logs stream when the build was made for another submission
# (before, or while this one waited): nothing was compiled for it, and nothing streamed.
BUILD_REUSED = "convoy-build-reused"
# Trailing metadata of a refused host RPC: the exit status the CLI gives its error (2: a
# request refused, nothing done; 1: a failure, such as a host that does not answer).
EXIT_STATUS = "convoy-exit-status"


def resources_to_pb(r: Resources) -> common_pb2.Resources:
    return common_pb2.Resources(cpus=r.cpus, memory_bytes=r.memory_bytes, gpus=r.gpus,
                                disk_bytes=r.disk_bytes)  # fmt: skip


def run_to_pb(r: RunRecord, progress: float | None = None, waiting_for: str = "") -> pb.Run:
    """The Run message; `progress` and `waiting_for`: what the coordinator knows of a run
    going on beside its record (Lifecycle.progress, Lifecycle.waiting_for)."""
    return pb.Run(
        id=r.id,
        submission_id=r.submission_id,
        experiment=r.experiment,
        index=r.index,
        params_json=json.dumps(r.params),
        state=r.state.value,
        attempt=r.attempt,
        host=r.host,
        has_exit_code=r.exit_code is not None,
        exit_code=r.exit_code or 0,
        created_at=r.created_at,
        started_at=r.started_at,
        ended_at=r.ended_at,
        reason=r.reason,
        image=r.image,
        results_path=r.results_path,
        revision=r.revision,
        resources=resources_to_pb(r.resources),
        command=r.command if isinstance(r.command, str) else json.dumps(list(r.command)),
        image_id=r.image_id,
        code=r.code.value if r.code else "",
        retries=r.retries,
        infra_retries=r.infra_retries,
        app_failures=r.app_failures,
        infra_failures=r.infra_failures,
        key=r.key,
        reused_from=r.reused_from,
        progress=progress or 0.0,
        has_progress=progress is not None,
        waiting_for=waiting_for,
    )


def result_row_to_pb(row: Row) -> pb.ResultRow:
    return pb.ResultRow(run=run_to_pb(row.run), metrics_json=json.dumps(row.metrics),
                        metrics_missing=row.missing)  # fmt: skip
