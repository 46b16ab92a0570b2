"""run.json: the one definition of a run's fields, as convoy writes them beside a run's results
and prints them for `convoy runs --json`. Built from the client's Run (the API's Run message as
convoy/client/convert.py makes it), so the coordinator and every client agree by construction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from convoy.client.types import Run

SHOWN_MISSING = 3  # results not collected named in one line; run.json names them all


def iso(ts: float) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_fields(run: Run) -> dict[str, Any]:
    """The fields of a run as run.json names them (without `files`)."""
    command: Any = run.command
    if command.startswith("["):
        command = json.loads(command)
    return {
        "run": run.id,
        "experiment": run.experiment,
        "submission": run.submission_id,
        "index": run.index,
        "params": run.params,
        "state": run.state,
        "code": run.code or None,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "host": run.host or None,
        "attempt": run.attempt,
        "failures": {"application": run.app_failures, "infrastructure": run.infra_failures},
        "retries": {"application": run.retries, "infrastructure": run.infra_retries},
        "image": run.image,
        "image_id": run.image_id or None,
        "revision": run.revision,
        "key": run.key or None,
        "reused_from": run.reused_from or None,
        "command": command,
        "resources": {
            "cpus": run.resources.cpus,
            "memory_bytes": run.resources.memory_bytes,
            "gpus": run.resources.gpus,
        },
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "duration_s": run.duration_s,
        "results_path": run.results_path,
        # About a run going on (null otherwise, so in run.json, written once it has ended):
        "progress": run.progress,  # its percent, while it runs
        "waiting_for": run.waiting_for or None,  # why it waits, while it is queued
    }


def missing_results(results_path: str) -> str | None:
    """What of a run's results did not come back, and why, from its run.json ("a (why); b
    (why) and 2 more"): None when everything did, or run.json is not here to read (a
    coordinator elsewhere)."""
    try:
        missed = json.loads((Path(results_path) / "run.json").read_text()).get("not_collected")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(missed, dict) or not missed:
        return None
    named = [f"{path} ({why})" for path, why in list(missed.items())[:SHOWN_MISSING]]
    more = f" and {len(missed) - SHOWN_MISSING} more" if len(missed) > SHOWN_MISSING else ""
    return "; ".join(named) + more
