"""The TUI reaches the coordinator through convoy.AsyncClient alone (nothing from coordinator/
or agent/ is imported, so what the TUI does, a script can do); here, what it says when that
fails."""

from __future__ import annotations

from convoy.errors import ConvoyError, CoordinatorUnavailable

RETRY_S = 2.0  # seconds between attempts to reach a coordinator that went away


def describe(e: ConvoyError) -> str:
    """A message a user can act on, for an API call that failed."""
    if isinstance(e, CoordinatorUnavailable):
        return f"{e} (retrying every {RETRY_S:g} s)"
    return str(e)
