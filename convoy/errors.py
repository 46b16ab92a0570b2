"""One error hierarchy: every failure convoy reports to a user is a ConvoyError subclass.

Errors carry data (file, line, column; exit codes; host names); `render` at the UI edge turns
them into text.
"""

from __future__ import annotations


class ConvoyError(Exception):
    """Base of every error convoy reports to a user."""

    exit_status = 1

    def render(self) -> str:
        return str(self)


class SpecError(ConvoyError):
    """The experiment file is not valid. Nothing was submitted."""

    exit_status = 2

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{file}:{line}:{column}: {message}")
        self.file = file
        self.line = line  # 1-based
        self.column = column  # 1-based
        self.message = message


class UsageError(ConvoyError):
    """The command line or a request is wrong."""

    exit_status = 2


class NotFound(ConvoyError):
    """A run, submission or host that does not exist."""

    exit_status = 2


class HostExists(UsageError):
    """A host of that name is there already (AddHost: ALREADY_EXISTS)."""


class HostBusy(ConvoyError):
    """A host cannot be removed: runs are in flight there (RemoveHost without force)."""

    exit_status = 2

    def __init__(self, host: str, runs: list[tuple[str, str]]) -> None:
        shown = ", ".join(f"{run} ({state})" for run, state in runs[:5])
        more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
        super().__init__(
            f"{host} has {len(runs)} run(s) in flight: {shown}{more}. Removed, it would have "
            "them queued again elsewhere while their containers go on there, unseen. Cancel "
            "them (`convoy cancel RUN`) or let them end first, or remove it anyway (force: "
            "`convoy hosts remove --force`)"
        )
        self.host = host
        self.runs = runs


class KeyMismatch(ConvoyError):
    """A host offers another SSH key than the fingerprint the user checked: nothing recorded."""

    exit_status = 2

    def __init__(self, host: str, offered: str, expected: str) -> None:
        super().__init__(f"host {host} offers key {offered}, not {expected}: not recorded")
        self.host = host
        self.offered = offered
        self.expected = expected


class CoordinatorUnavailable(ConvoyError):
    """No coordinator answers on the socket."""


class Unauthenticated(ConvoyError):
    """The coordinator (over TCP) refused the call's token: none, unknown, or revoked."""


class UntrustedCoordinator(ConvoyError):
    """A coordinator's TLS certificate is not the one pinned for it, or is issued by a CA and
    does not verify: nothing was sent."""


class HostUnavailable(ConvoyError):
    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"host {host}: {message}")
        self.host = host


class RuntimeFailure(ConvoyError):
    """A container could not be started or managed."""


class DiskFull(RuntimeFailure):
    """The host's disk is full ("no space left on device"), so no container could be made.

    Its own class so that callers can tell a host problem, which frees up by itself once
    results are collected, from a run or image that can never start."""


class WaitTimedOut(ConvoyError, TimeoutError):
    """A wait ended at its timeout, before what it waited for; that goes on."""
