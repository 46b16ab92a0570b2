"""The agent's container runtime: the `ContainerRuntime` interface and its implementations.

- `base`: the interface and the data types that cross it.
- `docker`: `DockerRuntime`, real containers on a Docker engine (the default).
- `fake`: `FakeRuntime`, containers that are only data, for tests and simulated fleets
  (``python -m convoy.agent --runtime fake``); what each does is read from its env
  (`fake_behaviour`: CONVOY_FAKE_DURATION, CONVOY_FAKE_EXIT, ...).

Everything is re-exported here, so ``from convoy.agent.runtime import DockerRuntime,
ContainerSpec`` keeps working.
"""

from __future__ import annotations

from convoy.errors import DiskFull, RuntimeFailure

from .base import (
    LABEL_PREFIX,
    ContainerExit,
    ContainerHandle,
    ContainerRuntime,
    ContainerSpec,
    ContainerState,
    container_name,
    handle_from_labels,
    labels_for,
    missing_image_message,
)
from .docker import OUTPUT_WRAPPER, TMPFS_MAX_BYTES, DockerRuntime, parse_docker_time
from .fake import FakeRuntime

__all__ = [
    "LABEL_PREFIX",
    "OUTPUT_WRAPPER",
    "TMPFS_MAX_BYTES",
    "ContainerExit",
    "ContainerHandle",
    "ContainerRuntime",
    "ContainerSpec",
    "ContainerState",
    "DiskFull",
    "DockerRuntime",
    "FakeRuntime",
    "RuntimeFailure",
    "container_name",
    "handle_from_labels",
    "labels_for",
    "missing_image_message",
    "parse_docker_time",
]
