"""A failed call's gRPC status made into convoy's errors (convoy/errors.py), with a message a
user can act on: the one place that reads status codes."""

from __future__ import annotations

from typing import Any

import grpc

from convoy.errors import ConvoyError, CoordinatorUnavailable, NotFound, Unauthenticated, UsageError
from convoy.rpcwire import EXIT_STATUS

# The request was refused as it stands: nothing changed, and the same request fails again.
_REFUSED = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
})  # fmt: skip


def error_of(e: grpc.aio.AioRpcError, where: str, remote: bool = False) -> ConvoyError:
    """The error for a call to the coordinator at `where` (over TCP: `remote`) that failed
    with `e`."""
    code, details = e.code(), e.details() or ""
    trailer: Any = e.trailing_metadata() or ()  # pairs (grpc's types say otherwise)
    said = next((str(v) for k, v in trailer if k == EXIT_STATUS), "")
    if said == "1" and code != grpc.StatusCode.UNAVAILABLE:  # a failure, not a refusal
        return ConvoyError(details or code.name)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(details or "not found")
    if code in _REFUSED:
        return UsageError(details or code.name.lower().replace("_", " "))
    if code == grpc.StatusCode.UNAVAILABLE:
        if not remote:  # its socket: gRPC's details add nothing a user can act on
            return CoordinatorUnavailable(f"the coordinator is not running (no answer on "
                                          f"{where}); start it with `convoy up` or `convoy run "
                                          "FILE`")  # fmt: skip
        return CoordinatorUnavailable(f"the coordinator at {where} does not answer: {details}")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return Unauthenticated(f"the coordinator at {where} refused the call: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ConvoyError(f"the coordinator at {where} did not answer in time ({details})")
    return ConvoyError(f"{code.name}: {details}" if details else code.name)
