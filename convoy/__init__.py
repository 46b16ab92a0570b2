"""convoy: run experiments across a fleet of hosts, in containers.

Shared core: the experiment spec, run states, units and errors, used by the coordinator, the
agent, the CLI and the TUI. Importing it imports no transport (grpc, docker, sqlite, asyncssh,
textual): `convoy.Client` and `convoy.AsyncClient` (convoy/client/) load grpc when first named.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from convoy.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        import convoy.client

        return getattr(convoy.client, name)
    raise AttributeError(f"module 'convoy' has no attribute {name!r}")
