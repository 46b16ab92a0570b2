"""The agent's own policy: what runs may do on this host, whatever the coordinator asks.

The host's owner writes it, as YAML, at `<agent home>/policy.yaml` (or `--policy FILE`); the
coordinator never does. Every field is optional and the defaults are the safe ones:

    networks: [none, bridge]    # the networks a run may ask for; `host` only if listed here
    run_as: "65534:65534"       # uid:gid the runs execute as (default: the agent's own user,
                                # or 65534:65534, nobody, when the agent runs as root)

A run asking for a network the policy does not list fails with the code `refused` and a
sentence naming what the host allows; the coordinator learns each host's networks from its
Describe and refuses at submit an experiment that no host it may use would run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from convoy.errors import UsageError

DEFAULT_NETWORKS = ("none", "bridge")
NOBODY = (65534, 65534)
_IDS = re.compile(r"^(\d{1,9}):(\d{1,9})$")
_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
POLICY_FILE = "policy.yaml"
MAX_POLICY_BYTES = 64 * 1024


def _default_user() -> tuple[int, int]:
    return NOBODY if os.geteuid() == 0 else (os.geteuid(), os.getegid())


@dataclass(frozen=True)
class Policy:
    networks: tuple[str, ...] = DEFAULT_NETWORKS
    run_as: tuple[int, int] = field(default_factory=_default_user)
    source: str = "the defaults"  # where it was read from, for messages

    @property
    def user(self) -> str:
        """The run user as Docker takes it ("uid:gid")."""
        return f"{self.run_as[0]}:{self.run_as[1]}"

    def refuses_network(self, network: str) -> str | None:
        """Why a run may not have this network here; None when it may."""
        if network in self.networks:
            return None
        return (f"this host's policy does not allow network {network!r} (it allows: "
                f"{', '.join(self.networks)}; {self.source})")  # fmt: skip

    @property
    def owns_files(self) -> bool:
        """Whether what runs see must be given to the run user (the agent is root, the runs
        are not): their workspaces, logs and sources."""
        return os.geteuid() == 0 and self.run_as != (0, 0)


def load_policy(path: Path) -> Policy:
    """The policy in `path`; the defaults when there is no such file. UsageError, naming the
    file and the field, for anything else."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return Policy()
    except OSError as e:
        raise UsageError(f"{path}: cannot read the agent's policy: {e.strerror}") from None
    if len(text) > MAX_POLICY_BYTES:
        raise UsageError(f"{path}: the agent's policy is over {MAX_POLICY_BYTES} bytes")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of policy fields")
    unknown = sorted(set(data) - {"networks", "run_as"})
    if unknown:
        raise UsageError(f"{path}: unknown policy fields {unknown} (known: networks, run_as)")
    networks: tuple[str, ...] = DEFAULT_NETWORKS
    if "networks" in data:
        given = data["networks"]
        if not isinstance(given, list) or not all(
            isinstance(n, str) and _NETWORK.match(n) for n in given
        ):
            raise UsageError(f"{path}: networks: expected a list of network names")
        networks = tuple(given)
    run_as = _default_user()
    if "run_as" in data:
        m = _IDS.match(str(data["run_as"]))
        if m is None:
            raise UsageError(f'{path}: run_as: expected "uid:gid", e.g. "65534:65534"')
        run_as = (int(m.group(1)), int(m.group(2)))
    return Policy(networks, run_as, f"set in {path}")
