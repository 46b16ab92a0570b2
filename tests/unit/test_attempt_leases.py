"""An attempt that cannot start holds no lease on the revisions it named."""

from __future__ import annotations

import asyncio
from pathlib import Path

from convoy.agent.attempts import AttemptRequest, Attempts, AttemptState
from convoy.content import hash_bytes, revision_id
from convoy.manifest import Entry


def test_an_attempt_whose_revision_is_missing_leaves_no_lease_on_its_inputs(
    tmp_path: Path,
) -> None:
    """Inputs are leased before the main revision: when that one is missing (collected; the
    coordinator then syncs it and starts a new attempt without releasing this one), the
    input's lease went with it, so the input can be collected again."""
    attempts = Attempts(tmp_path, runtime=None, agent_id="t", overlay=False)  # type: ignore[arg-type]
    store = attempts.objects
    data = b"an input\n"
    store.put_bytes(hash_bytes(data), data)
    entries = [Entry("data.csv", 0o100644, len(data), hash_bytes(data))]
    inputs = revision_id(entries)
    store.make_revision(inputs, entries)
    req = AttemptRequest(
        attempt_id="r-1.00-a1", run_id="r-1.00", submission_id="r-1", experiment="r",
        image="convoy/busybox:1", argv=("true",), env={}, cpus=1.0, memory_bytes=1 << 26,
        network="none", timeout_seconds=0.0, source_path="", revision="f" * 20,
        inputs={"data": inputs},
    )  # fmt: skip
    status = asyncio.run(attempts.start(req))
    assert (status.state, status.lacks_revision) == (AttemptState.ERROR, True)
    assert not store.in_use(inputs)
