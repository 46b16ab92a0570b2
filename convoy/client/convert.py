"""The API's messages made into the client's dataclasses (convoy/client/types.py): the one
place that knows both."""

from __future__ import annotations

import json

from convoy.v1 import common_pb2
from convoy.v1 import coordinator_pb2 as pb

from .types import (
    AgentStopped,
    Host,
    HostAdded,
    HostRemoved,
    KeyCheck,
    LogChunk,
    NewHost,
    Resources,
    Run,
    RunEvent,
    Submission,
    Submitted,
    Why,
)


def resources_of(r: common_pb2.Resources) -> Resources:
    return Resources(r.cpus, r.memory_bytes, r.gpus, r.disk_bytes)


def run_of(r: pb.Run) -> Run:
    return Run(
        id=r.id, submission_id=r.submission_id, experiment=r.experiment, index=r.index,
        params=json.loads(r.params_json or "{}"), state=r.state, attempt=r.attempt, host=r.host,
        exit_code=r.exit_code if r.has_exit_code else None, created_at=r.created_at,
        started_at=r.started_at, ended_at=r.ended_at, reason=r.reason, image=r.image,
        results_path=r.results_path, revision=r.revision, resources=resources_of(r.resources),
        command=r.command, image_id=r.image_id, code=r.code, retries=r.retries,
        infra_retries=r.infra_retries, app_failures=r.app_failures,
        infra_failures=r.infra_failures, key=r.key, reused_from=r.reused_from,
        progress=r.progress if r.has_progress else None, waiting_for=r.waiting_for,
    )  # fmt: skip


def submission_of(s: pb.Submission) -> Submission:
    return Submission(s.id, s.experiment, s.total, s.created_at, s.results_dir, s.revision,
                      s.spec_path, s.progress_pattern, s.priority)  # fmt: skip


def submitted_of(r: pb.SubmitResponse) -> Submitted:
    return Submitted(r.submission_id, [run_of(x) for x in r.runs], r.revision, r.unchanged,
                     list(r.changed), list(r.warnings))  # fmt: skip


def event_of(e: pb.RunEvent) -> RunEvent:
    return RunEvent(run_of(e.run), e.previous_state, e.snapshot, e.at)


def chunk_of(c: common_pb2.LogChunk) -> LogChunk:
    return LogChunk(c.offset, c.data, c.attempt)


def host_of(h: pb.Host) -> Host:
    return Host(h.name, h.state, resources_of(h.capacity), resources_of(h.allocated),
                list(h.runs), h.agent_version, h.address, h.reason, dict(h.labels), h.accepting,
                h.since)  # fmt: skip


def new_host_pb(h: NewHost) -> pb.AddHostRequest:
    return pb.AddHostRequest(
        name=h.name, address=h.address, port=h.port, user=h.user, identity=h.identity,
        cpus=h.cpus, memory_bytes=h.memory_bytes, python=h.python, agent_home=h.agent_home,
        docker_host=h.docker_host, labels=h.labels,
    )  # fmt: skip


def new_host_of(r: pb.AddHostRequest) -> NewHost:
    return NewHost(r.name, r.address, r.port, r.user, r.identity, r.cpus, r.memory_bytes,
                   r.python, r.agent_home, r.docker_host, dict(r.labels))  # fmt: skip


def added_of(r: pb.AddHostResponse) -> HostAdded:
    return HostAdded(r.hosts_file, host_of(r.host) if r.HasField("host") else None)


def removed_of(r: pb.RemoveHostResponse) -> HostRemoved:
    return HostRemoved(r.hosts_file, r.in_file, r.in_use, list(r.requeued))


def key_check_of(r: pb.TrustHostResponse) -> KeyCheck:
    return KeyCheck(r.key_type, r.fingerprint, r.recorded, r.known_hosts,
                    [(k.fingerprint, k.file) for k in r.others])  # fmt: skip


def why_of(w: pb.WhyResponse) -> Why:
    return Why(w.run_id, w.key, dict(sorted(w.key_parts.items())), w.reused_from, w.compared,
               list(w.changed), list(w.changed_files), w.forced, w.text)  # fmt: skip


def stopped_of(a: pb.AgentStopped) -> AgentStopped:
    return AgentStopped(a.host, a.stopped, a.said)
