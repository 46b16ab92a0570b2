"""convoy's Python client: the coordinator's API as Python calls returning dataclasses.

    from convoy import Client          # blocking; AsyncClient for asyncio code
    with Client() as c:
        sub = c.submit("sweep.yaml")
        runs = c.wait(sub.submission_id)
        df = c.results("sweep").dataframe()

The CLI and the TUI reach the coordinator only through here. docs/api.md has the whole story.
"""

from __future__ import annotations

from convoy.resultrows import Results, Row

from .aio import AsyncClient, LogStream
from .fetch import Fetched
from .sync import Client
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
    UploadReport,
    Why,
)

__all__ = [
    "AgentStopped", "AsyncClient", "Client", "Fetched", "Host", "HostAdded", "HostRemoved",
    "KeyCheck", "LogChunk", "LogStream", "NewHost", "Resources", "Results", "Row", "Run",
    "RunEvent", "Submission", "Submitted", "UploadReport", "Why",
]  # fmt: skip
