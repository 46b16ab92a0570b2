"""The hosts file: YAML text -> validated HostConfigs, and back.

Pure, like convoy.spec: text in, records or SpecErrors (file:line:column of the offending node)
out. Settings the file leaves out (port, user, identity) come from ~/.ssh/config when the SSH
session connects: asyncssh reads it itself, so nothing here reimplements ssh_config.

    hosts:
      - name: lab1                  # [a-z0-9][a-z0-9_.-]*, unique
        address: lab1.example.org   # or an ssh_config Host alias
        port: 22                    # optional
        user: alice                 # optional
        identity: ~/.ssh/id_ed25519 # optional
        labels: {gpu: a100}         # optional
        cpus: 16                    # optional capacity overrides
        memory: 64GiB
        python: python3             # the python the agent runs with
        agent_home: ~/.convoy/agent # where the agent keeps its state on the host
        docker_host: unix:///var/run/docker.sock  # optional; the host's engine
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from convoy.client.types import NewHost
from convoy.errors import HostExists, NotFound, SpecError, UsageError

# The spec's node checker gives the same messages (did-you-mean, expected X got Y) here.
from convoy.spec import NodeChecker, compose_yaml, parse_memory

DEFAULT_PYTHON = "python3"
DEFAULT_AGENT_HOME = "~/.convoy/agent"
RESERVED_NAME = "local"  # the coordinator's own machine (coordinator.server.LOCAL_HOST)

_HOST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_DOCKER_HOST_RE = re.compile(r"^(unix|tcp|ssh|fd)://\S+$")
_FIELDS = (
    "name", "address", "port", "user", "identity", "labels", "cpus", "memory", "python",
    "agent_home", "docker_host",
)  # fmt: skip
_BINARY_UNITS = (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2),
                 ("KiB", 1024))  # fmt: skip


@dataclass(frozen=True)
class HostConfig:
    name: str
    address: str
    port: int | None = None  # None: ssh_config's Port, else 22
    user: str | None = None  # None: ssh_config's User, else the local user
    identity: str | None = None  # a private key file; None: ssh_config / agent / defaults
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    cpus: float | None = None  # capacity overrides; None: what the agent measures
    memory: int | None = None  # bytes
    python: str = DEFAULT_PYTHON
    agent_home: str = DEFAULT_AGENT_HOME  # on the host; `~` is the remote user's home
    docker_host: str | None = None  # None: the host's DOCKER_HOST or default socket


def config_of(r: NewHost) -> HostConfig:
    """A host to add (an empty or zero field: a setting left out) as the hosts file holds
    it, to be checked as the file is."""
    return HostConfig(
        name=r.name, address=r.address, port=r.port or None, user=r.user or None,
        identity=r.identity or None, labels=dict(r.labels), cpus=r.cpus or None,
        memory=r.memory_bytes or None, python=r.python or DEFAULT_PYTHON,
        agent_home=r.agent_home or DEFAULT_AGENT_HOME, docker_host=r.docker_host or None,
    )  # fmt: skip


def format_memory(n: int) -> str:
    """The largest binary unit that divides n exactly: 68719476736 -> '64GiB'."""
    for unit, size in _BINARY_UNITS:
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


class _HostChecker(NodeChecker):
    def host(self, node: yaml.Node, path: str) -> HostConfig:
        fields = self.mapping(node, path)
        self.known_keys(fields, _FIELDS, f" in {path}")
        for required in ("name", "address"):
            if required not in fields:
                raise self.error(node, f"{path}: missing required field '{required}'")
        given = {k: v for k, (_, v) in fields.items() if k == "name" or self.got(v) != "nothing"}
        kwargs: dict[str, Any] = {}
        for key, value in given.items():
            kwargs[key] = getattr(self, f"field_{key}")(value, f"{path}.{key}")
        return HostConfig(**kwargs)

    def field_name(self, node: yaml.Node, path: str) -> str:
        what = (
            "a host name of lowercase letters, digits, '_', '.' and '-' (at most 63, starting "
            "with a letter or digit)"
        )
        value = self.string(node, path, what)
        if not _HOST_NAME_RE.match(value):
            raise self.expect(node, path, what)
        if value == RESERVED_NAME:
            raise self.error(node, f"{path}: '{value}' is this machine's own agent; choose "
                                   "another name")  # fmt: skip
        return value

    def _word(self, node: yaml.Node, path: str, what: str) -> str:
        value = self.string(node, path, what)
        if any(c.isspace() for c in value):
            raise self.expect(node, path, what)
        return value

    def field_address(self, node: yaml.Node, path: str) -> str:
        return self._word(node, path, "a host name, IP address or ssh_config Host alias")

    def field_port(self, node: yaml.Node, path: str) -> int:
        value = self.scalar(node)
        if type(value) is not int or not 1 <= value <= 65535:
            raise self.expect(node, path, "a port number from 1 to 65535")
        return value

    def field_user(self, node: yaml.Node, path: str) -> str:
        return self._word(node, path, "a user name")

    def field_identity(self, node: yaml.Node, path: str) -> str:
        return self.string(node, path, "the path of a private key file")

    def field_labels(self, node: yaml.Node, path: str) -> dict[str, str]:
        return self.labels(node, path)

    def field_cpus(self, node: yaml.Node, path: str) -> float:
        value = self.scalar(node)
        if type(value) not in (int, float) or not 0 < value < float("inf"):
            raise self.expect(node, path, "a positive number")
        return float(value)

    def field_memory(self, node: yaml.Node, path: str) -> int:
        return int(self.converted(node, path, parse_memory))

    def field_python(self, node: yaml.Node, path: str) -> str:
        return self.string(node, path, "a python interpreter, e.g. python3 or /usr/bin/python3")

    def field_agent_home(self, node: yaml.Node, path: str) -> str:
        return self.string(node, path, "a folder on the host, e.g. ~/.convoy/agent")

    def field_docker_host(self, node: yaml.Node, path: str) -> str:
        what = "a Docker engine URL such as unix:///var/run/docker.sock or tcp://host:2375"
        value = self.string(node, path, what)
        if not _DOCKER_HOST_RE.match(value):
            raise self.expect(node, path, what)
        return value


def _hosts_node(text: str, file: str) -> tuple[_HostChecker, yaml.SequenceNode | None]:
    """The `hosts:` sequence node (None for an empty file or `hosts:` with nothing)."""
    root = compose_yaml(text, file)
    check = _HostChecker(file)
    if root is None:
        return check, None
    if not isinstance(root, yaml.MappingNode):
        raise check.error(root, f"expected a mapping with a 'hosts' list, got {check.got(root)}")
    fields = check.mapping(root, "hosts file")
    check.known_keys(fields, ("hosts",))
    if "hosts" not in fields or check.got(node := fields["hosts"][1]) == "nothing":
        return check, None
    if not isinstance(node, yaml.SequenceNode):
        raise check.expect(node, "hosts", "a list of hosts")
    return check, node


def load_hosts(text: str, file: str = "<hosts>") -> list[HostConfig]:
    """Parse and validate a hosts file; raise SpecError at the first problem."""
    check, node = _hosts_node(text, file)
    if node is None:
        return []
    hosts: list[HostConfig] = []
    first_line: dict[str, int] = {}
    for i, item in enumerate(node.value):
        host = check.host(item, f"hosts[{i}]")
        if host.name in first_line:
            name_node = next(v for k, v in item.value if k.value == "name")
            raise check.error(
                name_node,
                f"hosts[{i}].name: duplicate host name '{host.name}' "
                f"(first defined on line {first_line[host.name]})",
            )
        first_line[host.name] = item.start_mark.line + 1
        hosts.append(host)
    return hosts


def _host_dict(host: HostConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"name": host.name, "address": host.address}
    if host.port is not None:
        out["port"] = host.port
    if host.user is not None:
        out["user"] = host.user
    if host.identity is not None:
        out["identity"] = host.identity
    if host.labels:
        out["labels"] = dict(host.labels)
    if host.cpus is not None:
        out["cpus"] = int(host.cpus) if host.cpus.is_integer() else host.cpus
    if host.memory is not None:
        out["memory"] = format_memory(host.memory)
    if host.python != DEFAULT_PYTHON:
        out["python"] = host.python
    if host.agent_home != DEFAULT_AGENT_HOME:
        out["agent_home"] = host.agent_home
    if host.docker_host is not None:
        out["docker_host"] = host.docker_host
    return out


def _dump(data: Any) -> str:
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))


def dump_hosts(hosts: list[HostConfig]) -> str:
    """A hosts file that load_hosts reads back as `hosts` (fields at their default left out)."""
    return _dump({"hosts": [_host_dict(h) for h in hosts]})


def _line_start(text: str, line: int) -> int:
    """Offset of the start of 0-based `line` (len(text) past the end)."""
    pos = 0
    for _ in range(line):
        nl = text.find("\n", pos)
        if nl < 0:
            return len(text)
        pos = nl + 1
    return pos


def _content_end(text: str, start: int, stop: int) -> int:
    """The offset just past the last line in text[start:stop] that is neither blank nor a
    comment, so that comments above the next item stay with it."""
    lines = text[start:stop].splitlines(keepends=True)
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    return start + sum(len(x) for x in lines)


def add_host_text(text: str, host: HostConfig, file: str = "<hosts>") -> str:
    """`text` with `host` appended to its hosts list, keeping the rest (comments included)."""
    try:  # read back as the file will be: `convoy up` must be able to load what this writes
        load_hosts(dump_hosts([host]), file)
    except SpecError as e:
        raise UsageError(f"host {host.name!r}: {e.message.removeprefix('hosts[0].')}") from None
    existing = load_hosts(text, file)
    if any(h.name == host.name for h in existing):
        raise HostExists(f"{file}: a host named '{host.name}' already exists")
    _, node = _hosts_node(text, file)
    if node is None or not node.value:  # no list yet, `hosts:` or `hosts: []`
        lines = text.splitlines(keepends=True)
        for i, line in enumerate(lines):
            if re.match(r"^hosts\s*:", line):
                lines[i] = dump_hosts([host])
                return "".join(lines)
        return (text.rstrip("\n") + "\n" if text.strip() else "") + dump_hosts([host])
    if node.flow_style:  # `hosts: [{...}]`: rewrite it in block style
        return dump_hosts([*existing, host])
    first = node.value[0]
    dash_line = text[_line_start(text, first.start_mark.line) :]
    indent = len(dash_line) - len(dash_line.lstrip(" "))
    block = _dump([_host_dict(host)])
    block = "".join(" " * indent + line for line in block.splitlines(keepends=True))
    end = _content_end(text, 0, _line_start(text, node.value[-1].end_mark.line + 1))
    if end > 0 and text[end - 1] != "\n":
        block = "\n" + block
    return text[:end] + block + text[end:]


def remove_host_text(text: str, name: str, file: str = "<hosts>") -> str:
    """`text` without the host named `name`, keeping the rest (comments included)."""
    hosts = load_hosts(text, file)
    index = next((i for i, h in enumerate(hosts) if h.name == name), None)
    if index is None:
        raise NotFound(f"{file}: no host named '{name}'")
    _, node = _hosts_node(text, file)
    assert node is not None
    if node.flow_style:
        return dump_hosts([h for h in hosts if h.name != name])
    items = node.value
    start = _line_start(text, items[index].start_mark.line)
    if index + 1 < len(items):
        stop = _content_end(text, start, _line_start(text, items[index + 1].start_mark.line))
    else:
        stop = _content_end(text, start, _line_start(text, items[index].end_mark.line + 1))
    if stop < len(text) and text[stop - 1 : stop] != "\n":  # pragma: no cover - defensive
        stop = text.find("\n", stop) + 1 or len(text)
    out = text[:start] + text[stop:]
    if len(hosts) == 1:  # an empty block list would read as `hosts: null`: say it plainly
        out = re.sub(r"(?m)^hosts[ \t]*:[ \t]*$", "hosts: []", out, count=1)
    return out


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_hosts(path: Path) -> list[HostConfig]:
    """The hosts in the file at `path`; no file means no hosts."""
    return load_hosts(path.read_text(), str(path)) if path.exists() else []


def add_host(path: Path, host: HostConfig) -> None:
    """`convoy hosts add`: append `host` to the file (created if missing)."""
    text = path.read_text() if path.exists() else ""
    write_atomic(path, add_host_text(text, host, str(path)))


def remove_host(path: Path, name: str, confirm: Callable[[], None] | None = None) -> None:
    """`convoy hosts remove`: take the host named `name` out of the file. `confirm`, called
    once the file is known to hold the host, may raise to leave the file as it is."""
    if not path.exists():
        raise NotFound(f"{path}: no host named '{name}' (the file does not exist)")
    text = remove_host_text(path.read_text(), name, str(path))
    if confirm is not None:
        confirm()
    write_atomic(path, text)
