"""convoy: run experiments across a fleet of hosts, in containers.

Shared core: the experiment spec, run states, units and errors, used by the coordinator, the
agent, the CLI and the TUI. Imports no transport (grpc, docker, sqlite, asyncssh, textual).
"""

__version__ = "0.1.0"
