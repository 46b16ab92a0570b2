"""The experiment file: YAML text -> validated ExperimentSpec -> expanded RunSpecs.

Pure: no I/O beyond what the caller passes in (text and a file name for messages).
Every validation error is a SpecError naming file:line:column (1-based) of the offending node
and the expected form.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.reader import ReaderError

from convoy.errors import SpecError
from convoy.states import DEFAULT_INFRA_RETRIES

ParamValue = str | int | float | bool


DEFAULT_DISK_BYTES = 10 << 30  # resources.disk: a run's writable storage on its host


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    memory_bytes: int = 512 * 1024 * 1024
    gpus: int = 0
    # What the run may write on its host (its workspace's changes and its output log): the
    # agent ends it (code disk_limit) past this. Not a placement criterion.
    disk_bytes: int = DEFAULT_DISK_BYTES


@dataclass(frozen=True)
class Limits:
    """Caps on what one run may leave: past one, the run fails with the code output_limit
    (unless it failed otherwise), what came within it is kept and the rest is said."""

    output_files: int = 100_000  # result files collected
    output_bytes: int = 50 << 30  # their bytes
    log_bytes: int = 1 << 30  # of output.log: its first and last halves kept, marked cut


@dataclass(frozen=True)
class OnFailure:
    """What a sweep does when its runs fail by the application (exit status, out of memory,
    timeout), each after its retries."""

    stop_after: int = 0  # that many such failures cancel the submission's other runs; 0: never


@dataclass(frozen=True)
class BuildSpec:
    """The build step: run once per (image, revision, command) on each host, before that
    revision's first run there; its files then lie under every run's workspace."""

    command: str | tuple[str, ...]
    image: str = ""  # "": the experiment's image
    resources: Resources | None = None  # None: the experiment's
    timeout_seconds: float = 0.0
    once: str = "host"


@dataclass(frozen=True)
class WatchSpec:
    """`convoy watch`: how long the sources must be quiet before a rerun, what happens to the
    superseded runs, and which runs go first (the rest only once those succeed)."""

    debounce_s: float = 0.05  # an editor's save is a few writes within milliseconds
    on_change: str = "cancel"  # or "finish"
    smoke: tuple[tuple[str, Sequence[ParamValue]], ...] = ()  # parameter -> values to run first


@dataclass(frozen=True)
class PlacementSpec:
    """Which hosts the runs may go to (every host by default) and how they are spread over
    them. `hosts`: only these (names from the hosts file; the embedded host is 'local');
    `labels`: only hosts whose hosts-file labels include every one of these; `policy`: 'pack'
    (fill hosts in name order) or 'spread' (the host with the most free cpus first)."""

    hosts: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    policy: str = "pack"

    @property
    def restricts(self) -> bool:
        return bool(self.hosts or self.labels)

    def allows(self, host: str, labels: Mapping[str, str]) -> bool:
        if self.hosts and host not in self.hosts:
            return False
        return all(labels.get(k) == v for k, v in self.labels)

    def __str__(self) -> str:
        parts = [f"hosts {', '.join(self.hosts)}"] if self.hosts else []
        if self.labels:
            parts.append("labels " + ", ".join(f"{k}={v}" for k, v in self.labels))
        return "; ".join(parts) or "any host"


@dataclass(frozen=True)
class MetricSpec:
    """A value read from each run's results (`metrics:`, read when its folder is written):
    from a JSON file by key path, from a CSV file's last row by column, or from output.log,
    the last line a regex matches."""

    name: str
    file: str = ""  # relative to the run's results folder (its working directory)
    key: str = ""  # with file: a JSON key path, a.b.c (an integer picks a list's item)
    column: str = ""  # with file: the CSV column whose last row's value it is
    output: str = ""  # a regex over output.log: its group `value`, or its one group

    def declared(self) -> dict[str, str]:
        """The declaration as the experiment file gives it (without the name)."""
        fields = (("file", self.file), ("key", self.key), ("column", self.column),
                  ("output", self.output))  # fmt: skip
        return {k: v for k, v in fields if v}


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    image: str
    # A string is a shell command (run with /bin/sh -c); a list is an argv (no shell).
    command: str | tuple[str, ...]
    # Parameter name -> its values, in file order. The matrix is their cartesian product. A
    # {range: [...]} stays a range: nothing is made of it beyond what runs are made.
    matrix: tuple[tuple[str, Sequence[ParamValue]], ...] = ()
    resources: Resources = field(default_factory=Resources)
    env: tuple[tuple[str, str], ...] = ()
    outputs: tuple[str, ...] = ()  # relative paths or globs; empty: every created/changed file
    retries: int = 0  # for the application's failures: non-zero exit, out of memory, timeout
    # For the platform's: its host lost, the runtime or agent failing, sync, image, disk full.
    infra_retries: int = DEFAULT_INFRA_RETRIES
    timeout_seconds: float = 0.0  # 0: no timeout
    network: str = "none"
    sources: str = "."  # relative to the experiment file's directory
    # Datasets: name -> folder (relative to the experiment file's directory, or absolute),
    # synced like the sources and mounted read-only at /inputs/<name>.
    inputs: tuple[tuple[str, str], ...] = ()
    progress: str | None = None  # a regex with a named group `percent`
    build: BuildSpec | None = None
    watch: WatchSpec = field(default_factory=WatchSpec)
    placement: PlacementSpec = field(default_factory=PlacementSpec)
    limits: Limits = field(default_factory=Limits)
    on_failure: OnFailure = field(default_factory=OnFailure)
    metrics: tuple[MetricSpec, ...] = ()  # in file order
    file: str = "<spec>"

    def folders(self, spec_file: Path) -> tuple[Path, dict[str, Path]]:
        """Its sources folder and its input folders by name, resolved against the folder of
        the experiment file at `spec_file` (whether they exist is the caller's to check)."""
        base = spec_file.parent
        return (base / self.sources).resolve(), {n: (base / f).resolve() for n, f in self.inputs}


@dataclass(frozen=True)
class RunSpec:
    index: int  # 0-based position in the expansion
    params: dict[str, ParamValue]
    # After ${param} substitution. A shell command stays a str; an argv stays a tuple.
    command: str | tuple[str, ...]
    env: dict[str, str]


NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
DEFAULT_MAX_RUNS = 1_000_000  # runs one submission may have (CONVOY_MAX_RUNS)
MAX_RANGE_BOUND = 10**15  # a range's bounds, so that arithmetic on them stays exact
MAX_FILE_BYTES = 4 << 20  # an experiment file; the API's messages are 4 MiB at most
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")
# `$${` is the escape for a literal `${`; `${name}` is a parameter reference. Anything else
# (`$VAR`, `${VAR:-x}`) is left alone for the shell.
_REF_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REQUIRED = ("name", "image", "command")
_OPTIONAL = (
    "matrix", "resources", "env", "outputs", "retries", "infra_retries", "timeout", "network",
    "sources", "inputs",
)  # fmt: skip
_FIELDS = (
    *_REQUIRED, *_OPTIONAL, "progress", "build", "watch", "placement", "limits", "on_failure",
    "metrics",
)  # fmt: skip
_BUILD_FIELDS = ("command", "image", "resources", "timeout", "once")
_MEMORY_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgtp", start=1):
    _MEMORY_UNITS.update({_p: 1024**_i, _p + "ib": 1024**_i, _p + "b": 1000**_i})
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)$")
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE = re.compile(rf"^{_NUM}$|^(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?$")
_DURATION_UNITS = (1, 86400, 3600, 60, 1)


def parse_memory(value: Any) -> int:
    """Bytes from an int or a string such as "512MiB", "1G" (binary), "1GB" (decimal)."""
    n = 0
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and (m := _MEMORY_RE.match(value.strip().lower())):
        n = int(Decimal(m.group(1)) * _MEMORY_UNITS.get(m.group(2), 0))
    if n <= 0:
        raise ValueError(
            f"expected a memory size > 0 such as 2048 (bytes), '512MiB', '1G' or '1GB', "
            f"got {value!r}"
        )
    return n


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as "90s", "30m", "1h30m", "2d" ("90" = 90s)."""
    seconds = 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value.lower().replace(" ", ""))):
        seconds = sum(float(g) * u for g, u in zip(m.groups(), _DURATION_UNITS, strict=True) if g)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"expected a duration > 0 such as 90 (seconds), '90s', '30m', '1h30m' or '2d', "
            f"got {value!r}"
        )
    return seconds


def _error_at(file: str, node: yaml.Node, message: str) -> SpecError:
    mark = node.start_mark
    return SpecError(file, mark.line + 1, mark.column + 1, message)


def label_from_text(item: str) -> tuple[str, str]:
    """A label given as KEY=VALUE on the command line, read as a hosts file's or placement's
    label is (NodeChecker.labels): `ib=yes` is ib "true", as `ib: yes` is in YAML, so that the
    two compare equal. ValueError says what is wrong."""
    key, eq, value = item.partition("=")
    if not eq or not _LABEL_RE.match(key) or not value:
        raise ValueError(f"{item!r}: expected KEY=VALUE, KEY matching {_LABEL_RE.pattern} and "
                         "VALUE not empty")  # fmt: skip
    tag = yaml.SafeLoader("").resolve(yaml.ScalarNode, value, (True, False))
    if tag == "tag:yaml.org,2002:bool":
        return key, param_text(bool(yaml.safe_load(value)))
    return key, value


def param_text(value: ParamValue) -> str:
    """A parameter value as the experiment file writes it (booleans as true/false), for
    commands, listings and runs.csv alike."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _substitute(text: str, values: dict[str, str], quote: bool) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return "${"
        return shlex.quote(values[m.group(1)]) if quote else values[m.group(1)]

    return _REF_RE.sub(repl, text)


def _bad_relative_path(path: str) -> bool:
    return path.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", path)


class NodeChecker:
    """Validates composed YAML nodes, turning each problem into a SpecError at its node."""

    _TYPED_TAGS = {"null", "bool", "int", "float"}

    def __init__(self, file: str) -> None:
        self.file = file
        self.constructor = SafeConstructor()
        self.params: list[str] = []  # matrix parameter names, for ${name} references
        self.matrix_values: tuple[tuple[str, Sequence[ParamValue]], ...] = ()

    def error(self, node: yaml.Node, message: str) -> SpecError:
        return _error_at(self.file, node, message)

    def scalar(self, node: yaml.Node) -> Any:
        """A scalar's value: None, bool, int, float or (any other tag) str; None if no scalar."""
        if not isinstance(node, yaml.ScalarNode):
            return None
        if node.tag.rsplit(":", 1)[-1] not in self._TYPED_TAGS:
            return node.value
        try:
            return self.constructor.construct_object(node)
        except (ValueError, KeyError, yaml.YAMLError):  # KeyError: `!!bool nope`
            raise self.error(node, f"cannot read {node.value!r} as {node.tag}") from None

    def got(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        value = self.scalar(node)
        return "nothing" if value is None else repr(value)

    def expect(self, node: yaml.Node, path: str, what: str) -> SpecError:
        return self.error(node, f"{path}: expected {what}, got {self.got(node)}")

    def mapping(self, node: yaml.Node, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Key text -> (key node, value node), in file order; duplicate keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            raise self.expect(node, path, "a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.error(key, f"{path}: expected a plain key, got {self.got(key)}")
            if key.value in out:
                line = out[key.value][0].start_mark.line + 1
                raise self.error(key, f"duplicate key '{key.value}' (first defined on line {line})")
            out[key.value] = (key, value)
        return out

    def known_keys(self, fields: dict[str, Any], allowed: tuple[str, ...], where: str = "") -> None:
        for name, (key, _) in fields.items():
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                options = ", ".join(allowed)
                hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {options}"
                raise self.error(key, f"unknown field '{name}'{where} ({hint})")

    def string(self, node: yaml.Node, path: str, what: str = "a non-empty string") -> str:
        """A non-empty scalar as the text the user wrote (so `command: true` is a command)."""
        if self.scalar(node) is None or not node.value.strip():
            raise self.expect(node, path, what)
        return str(node.value)

    def text(self, node: yaml.Node, path: str) -> str:
        """A scalar as the text the user wrote (bools as true/false); for argv and env."""
        value = self.scalar(node)
        if value is None:
            raise self.expect(node, path, "a string, number or boolean")
        return self.refs(node, path, param_text(value) if isinstance(value, bool) else node.value)

    def refs(self, node: yaml.Node, path: str, text: str) -> str:
        """`text`, after checking that each ${name} in it is a matrix parameter."""
        for m in _REF_RE.finditer(text):
            ref = m.group(1)
            if ref is not None and ref not in self.params:
                close = difflib.get_close_matches(ref, self.params, n=1)
                hint = f"did you mean '${{{close[0]}}}'? " if close else ""
                known = ", ".join(self.params) or "none"
                raise self.error(
                    node,
                    f"{path}: '${{{ref}}}' is not a matrix parameter ({hint}parameters: {known}); "
                    f"write '$${{{ref}}}' for a literal '${{{ref}}}'",
                )
        return text

    def integer(self, node: yaml.Node, path: str, minimum: int) -> int:
        value = self.scalar(node)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.expect(node, path, f"an integer >= {minimum}")
        return value

    def converted(self, node: yaml.Node, path: str, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(self.scalar(node))
        except ValueError as e:
            raise self.error(node, f"{path}: {e}") from None

    def relative_path(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path, "a relative path")
        if _bad_relative_path(value):
            raise self.error(node, f"{path}: expected a relative path without '..', got {value!r}")
        return value

    def name(self, node: yaml.Node) -> str:
        what = (
            "a name of lowercase letters, digits, '_', '.' and '-' (at most 63, starting with "
            "a letter or digit), since it becomes part of run ids and directory names"
        )
        if not NAME_RE.match(value := self.string(node, "name", what)):
            raise self.expect(node, "name", what)
        return value

    def command(self, node: yaml.Node, path: str = "command") -> str | tuple[str, ...]:
        if isinstance(node, yaml.SequenceNode) and node.value:
            return tuple(self.text(n, f"{path}[{i}]") for i, n in enumerate(node.value))
        what = "a shell command (string) or a non-empty list of arguments"
        return self.refs(node, path, self.string(node, path, what))

    def build(self, node: yaml.Node) -> BuildSpec:
        """`build: make` (a command), or a mapping with command, image, resources, timeout, once."""
        if not isinstance(node, yaml.MappingNode):
            return BuildSpec(command=self.build_command(node, "build"))
        fields = self.mapping(node, "build")
        self.known_keys(fields, _BUILD_FIELDS, " in build")
        if "command" not in fields:
            raise self.error(node, "build: missing required field 'command'")
        kwargs: dict[str, Any] = {
            "command": self.build_command(fields["command"][1], "build.command")
        }
        if "image" in fields:
            kwargs["image"] = self.string(fields["image"][1], "build.image")
        if "resources" in fields:
            kwargs["resources"] = self.resources(fields["resources"][1], "build.resources")
        if "timeout" in fields:
            kwargs["timeout_seconds"] = self.converted(
                fields["timeout"][1], "build.timeout", parse_duration
            )
        if "once" in fields:
            n = fields["once"][1]
            once = self.string(n, "build.once", "'host' (each host builds for itself)")
            if once == "cluster":
                raise self.error(n, "build.once: 'cluster' (build on one host, ship the output "
                                    "to the others) is not supported yet; use 'host'")  # fmt: skip
            if once != "host":
                raise self.expect(n, "build.once", "'host' (each host builds for itself)")
            kwargs["once"] = once
        return BuildSpec(**kwargs)

    def build_command(self, node: yaml.Node, path: str) -> str | tuple[str, ...]:
        """A build runs once per revision, for all the runs: no matrix parameters in it."""
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for n in nodes:
            text = n.value if isinstance(n, yaml.ScalarNode) else ""
            for m in _REF_RE.finditer(text):
                if m.group(1) is not None:
                    raise self.error(
                        n, f"{path}: '${{{m.group(1)}}}': a build runs once for all the runs of "
                        f"a revision, so it cannot use matrix parameters (write '$${{' for a "
                        f"literal '${{')",
                    )  # fmt: skip
        return self.command(node, path)  # no ${name} left, so the parameters play no part

    def watch(self, node: yaml.Node) -> WatchSpec:
        fields = self.mapping(node, "watch")
        self.known_keys(fields, ("debounce", "on_change", "smoke"), " in watch")
        kwargs: dict[str, Any] = {}
        if "debounce" in fields:
            kwargs["debounce_s"] = self.converted(
                fields["debounce"][1], "watch.debounce", parse_duration
            )
        if "on_change" in fields:
            n = fields["on_change"][1]
            what = "'cancel' (stop the superseded runs) or 'finish' (let them end)"
            policy = self.string(n, "watch.on_change", what)
            if policy not in ("cancel", "finish"):
                raise self.expect(n, "watch.on_change", what)
            kwargs["on_change"] = policy
        if "smoke" in fields:
            smoke = []
            for name, (key, value) in self.mapping(fields["smoke"][1], "watch.smoke").items():
                if name not in self.params:
                    known = ", ".join(self.params) or "none"
                    raise self.error(key, f"watch.smoke: '{name}' is not a matrix parameter "
                                          f"(parameters: {known})")  # fmt: skip
                values = self.values(value, f"watch.smoke.{name}")
                allowed = dict(self.matrix_values)[name]
                # A {range: [...]} gives many values from one node: errors point at it.
                places = [value] * len(values) if isinstance(value, yaml.MappingNode) else None
                for v, item in zip(values, places or _items(value), strict=True):
                    if not _has_value(allowed, v):
                        raise self.error(item, f"watch.smoke.{name}: {v!r} is not one of the "
                                               f"matrix's values for '{name}'")  # fmt: skip
                smoke.append((name, values))
            kwargs["smoke"] = tuple(smoke)
        return WatchSpec(**kwargs)

    def matrix(self, node: yaml.Node) -> tuple[tuple[str, Sequence[ParamValue]], ...]:
        out = []
        for name, (key, value) in self.mapping(node, "matrix").items():
            if not _IDENT_RE.match(name):
                what = f"a parameter name matching {_IDENT_RE.pattern}"
                raise self.error(key, f"matrix: expected {what}, got {name!r}")
            out.append((name, self.values(value, f"matrix.{name}")))
        total = math.prod(count(values) for _, values in out)
        limit = max_runs()
        if total > limit:
            sizes = " x ".join(f"{count(v):,}" for _, v in out)
            raise self.error(node, f"matrix: {total:,} runs ({sizes}) is more than the "
                             f"{limit:,} one submission may have (CONVOY_MAX_RUNS); split the "
                             "sweep")  # fmt: skip
        return tuple(out)

    def values(self, node: yaml.Node, path: str) -> Sequence[ParamValue]:
        if isinstance(node, yaml.MappingNode):
            fields = self.mapping(node, path)
            self.known_keys(fields, ("range",), f" in {path}")
            if "range" not in fields:
                raise self.error(node, f"{path}: expected a list of values or {{range: [...]}}")
            return self.range_values(fields["range"][1], f"{path}.range")
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not items:
            raise self.error(node, f"{path}: expected a non-empty list of values")
        values: list[ParamValue] = []
        seen: set[tuple[type, ParamValue]] = set()  # 1 and 1.0 and True differ, as in YAML
        for item in items:
            value = self.scalar(item)
            if value is None:
                raise self.expect(item, path, "a string, number or boolean value")
            if (type(value), value) in seen:
                raise self.error(item, f"{path}: duplicate value {value!r}")
            seen.add((type(value), value))
            values.append(value)
        return tuple(values)

    def range_values(self, node: yaml.Node, path: str) -> range:
        items = node.value if isinstance(node, yaml.SequenceNode) else []
        bounds: list[int] = [self.scalar(n) for n in items]
        if not 2 <= len(bounds) <= 3 or not all(type(b) is int for b in bounds):
            what = "[start, stop] or [start, stop, step] of integers"
            raise self.error(node, f"{path}: expected {what}")
        if len(bounds) == 3 and bounds[2] == 0:
            raise self.error(items[2], f"{path}: step must not be 0")
        if any(abs(b) > MAX_RANGE_BOUND for b in bounds):
            raise self.error(node, f"{path}: bounds beyond +-{MAX_RANGE_BOUND:,} are refused")
        values = range(*bounds)
        if not count(values):
            raise self.error(node, f"{path}: range {bounds} is empty (stop is exclusive)")
        return values

    def limits(self, node: yaml.Node) -> Limits:
        fields = self.mapping(node, "limits")
        self.known_keys(fields, ("output_files", "output_bytes", "log_bytes"), " in limits")
        kwargs: dict[str, Any] = {}
        if "output_files" in fields:
            kwargs["output_files"] = self.integer(fields["output_files"][1],
                                                  "limits.output_files", 1)  # fmt: skip
        for name in ("output_bytes", "log_bytes"):
            if name in fields:
                kwargs[name] = self.converted(fields[name][1], f"limits.{name}", parse_memory)
        return Limits(**kwargs)

    def on_failure(self, node: yaml.Node) -> OnFailure:
        fields = self.mapping(node, "on_failure")
        self.known_keys(fields, ("stop_after",), " in on_failure")
        if "stop_after" not in fields:
            return OnFailure()
        return OnFailure(self.integer(fields["stop_after"][1], "on_failure.stop_after", 1))

    def resources(self, node: yaml.Node, path: str = "resources") -> Resources:
        fields = self.mapping(node, path)
        self.known_keys(fields, ("cpus", "memory", "gpus", "disk"), f" in {path}")
        kwargs: dict[str, Any] = {}
        if "cpus" in fields:
            n = fields["cpus"][1]
            cpus = self.scalar(n)
            if type(cpus) not in (int, float) or not math.isfinite(cpus) or cpus <= 0:
                raise self.expect(n, f"{path}.cpus", "a positive number")
            kwargs["cpus"] = float(cpus)
        if "memory" in fields:
            memory = self.converted(fields["memory"][1], f"{path}.memory", parse_memory)
            kwargs["memory_bytes"] = memory
        if "gpus" in fields:
            kwargs["gpus"] = self.integer(fields["gpus"][1], f"{path}.gpus", 0)
        if "disk" in fields:
            kwargs["disk_bytes"] = self.converted(fields["disk"][1], f"{path}.disk", parse_memory)
        return Resources(**kwargs)

    def env(self, node: yaml.Node) -> tuple[tuple[str, str], ...]:
        out = []
        for name, (key, value) in self.mapping(node, "env").items():
            if not _IDENT_RE.match(name):
                what = f"a variable name matching {_IDENT_RE.pattern}"
                raise self.error(key, f"env: expected {what}, got {name!r}")
            out.append((name, self.text(value, f"env.{name}")))
        return tuple(out)

    def inputs(self, node: yaml.Node) -> tuple[tuple[str, str], ...]:
        out = []
        for name, (key, value) in self.mapping(node, "inputs").items():
            if not NAME_RE.match(name):
                what = f"an input name matching {NAME_RE.pattern}"
                raise self.error(key, f"inputs: expected {what}, got {name!r}")
            out.append((name, self.string(value, f"inputs.{name}", "a folder path")))
        return tuple(out)

    def outputs(self, node: yaml.Node) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.expect(node, "outputs", "a list of relative paths or globs")
        return tuple(
            posixpath.normpath(self.relative_path(n, f"outputs[{i}]"))
            for i, n in enumerate(node.value)
        )

    def network(self, node: yaml.Node) -> str:
        what = "'none', 'bridge' or a docker network name"
        value = self.string(node, "network", what)
        if not _NETWORK_RE.match(value):
            raise self.expect(node, "network", what)
        return value

    def labels(self, node: yaml.Node, path: str) -> dict[str, str]:
        """Label name -> value as text (booleans as true/false): the hosts file's labels and
        an experiment's placement read them alike, so that they compare equal."""
        out = {}
        for name, (key, value) in self.mapping(node, path).items():
            if not _LABEL_RE.match(name):
                raise self.error(key, f"{path}: expected a label name matching "
                                      f"{_LABEL_RE.pattern}, got {name!r}")  # fmt: skip
            label = self.scalar(value)
            if label is None:
                raise self.expect(value, f"{path}.{name}", "a string, number or boolean")
            out[name] = param_text(label) if isinstance(label, bool) else str(value.value)
        return out

    def placement(self, node: yaml.Node) -> PlacementSpec:
        fields = self.mapping(node, "placement")
        self.known_keys(fields, ("hosts", "labels", "policy"), " in placement")
        hosts: list[str] = []
        if "hosts" in fields:
            n = fields["hosts"][1]
            if not isinstance(n, yaml.SequenceNode) or not n.value:
                raise self.expect(n, "placement.hosts", "a non-empty list of host names")
            for i, item in enumerate(n.value):
                name = self.string(item, f"placement.hosts[{i}]", "a host name")
                if name in hosts:
                    raise self.error(item, f"placement.hosts: duplicate host {name!r}")
                hosts.append(name)
        labels = self.labels(fields["labels"][1], "placement.labels") if "labels" in fields else {}
        policy = "pack"
        if "policy" in fields:
            n = fields["policy"][1]
            what = "'pack' (fill hosts in name order) or 'spread' (the emptiest host first)"
            policy = self.string(n, "placement.policy", what)
            if policy not in ("pack", "spread"):
                raise self.expect(n, "placement.policy", what)
        return PlacementSpec(tuple(hosts), tuple(labels.items()), policy)

    def progress(self, node: yaml.Node) -> str:
        value = self.string(node, "progress", "a regular expression")
        try:
            pattern = re.compile(value)
        except re.error as e:
            raise self.error(node, f"progress: invalid regular expression: {e}") from None
        if "percent" not in pattern.groupindex:
            what = "a regular expression with a named group (?P<percent>...)"
            raise self.expect(node, "progress", what)
        return value

    def metrics(self, node: yaml.Node) -> tuple[MetricSpec, ...]:
        out = []
        forms = ("{file, key} (JSON), {file, column} (CSV) or {output} (a regular expression "
                 "over the run's output)")  # fmt: skip
        for name, (key, value) in self.mapping(node, "metrics").items():
            path = f"metrics.{name}"
            if not _IDENT_RE.match(name):
                what = f"a metric name matching {_IDENT_RE.pattern}"
                raise self.error(key, f"metrics: expected {what}, got {name!r}")
            if not isinstance(value, yaml.MappingNode):
                raise self.expect(value, path, forms)
            fields = self.mapping(value, path)
            self.known_keys(fields, ("file", "key", "column", "output"), f" in {path}")
            given = {k: v for k, (_, v) in fields.items()}
            if "output" in given:
                if len(given) > 1:
                    other = next(k for k in fields if k != "output")
                    raise self.error(fields[other][0], f"{path}: 'output' reads the run's "
                                     f"output; it takes no '{other}'")  # fmt: skip
                out.append(MetricSpec(name, output=self.metric_regex(given["output"], path)))
                continue
            if "file" not in given:
                if fields:  # a key or a column
                    first, (k, _) = next(iter(fields.items()))
                    raise self.error(k, f"{path}: '{first}' needs 'file', the file it is "
                                     "read from")  # fmt: skip
                raise self.error(value, f"{path}: expected {forms}")
            file = posixpath.normpath(self.relative_path(given["file"], f"{path}.file"))
            if "key" in given and "column" in given:
                raise self.error(fields["column"][0], f"{path}: give 'key' (a JSON file) or "
                                 "'column' (a CSV file), not both")  # fmt: skip
            if "key" in given:
                key_path = self.string(given["key"], f"{path}.key", "a key path such as a.b.c")
                if "" in key_path.split("."):
                    raise self.expect(given["key"], f"{path}.key", "a key path such as a.b.c")
                out.append(MetricSpec(name, file=file, key=key_path))
            elif "column" in given:
                column = self.string(given["column"], f"{path}.column", "a column name")
                out.append(MetricSpec(name, file=file, column=column))
            else:
                raise self.error(value, f"{path}: a file needs 'key' (a JSON file: a key path "
                                 "such as a.b.c) or 'column' (a CSV file)")  # fmt: skip
        return tuple(out)

    def metric_regex(self, node: yaml.Node, path: str) -> str:
        what = "a regular expression with a group named 'value', or with exactly one group"
        value = self.string(node, f"{path}.output", what)
        try:
            pattern = re.compile(value)
        except re.error as e:
            raise self.error(node, f"{path}.output: invalid regular expression: {e}") from None
        if "value" not in pattern.groupindex and pattern.groups != 1:
            raise self.expect(node, f"{path}.output", what)
        return value


def _items(node: yaml.Node) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else [node]


def smoke_indexes(spec: ExperimentSpec) -> list[int]:
    """The runs `watch.smoke` names (each of its parameters at one of its values)."""
    if not spec.watch.smoke:
        return []
    wanted = dict(spec.watch.smoke)
    return [
        r.index for r in expand(spec)
        if all(any(type(v) is type(r.params[k]) and v == r.params[k] for v in vs)
               for k, vs in wanted.items())
    ]  # fmt: skip


def compose_yaml(text: str, file: str) -> yaml.Node | None:
    """YAML text -> its node tree (with positions); a syntax error is a SpecError at its place,
    and so is a file over MAX_FILE_BYTES or nested deeper than Python's stack allows."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(file, 1, 1, f"the file is over {MAX_FILE_BYTES >> 20} MiB; an "
                        "experiment file that large is refused")  # fmt: skip
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise SpecError(file, 1, 1, "invalid YAML: nested too deeply") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        context = f"{e.context}: " if e.context else ""
        raise SpecError(file, line, column, f"invalid YAML: {context}{e.problem}") from None
    except ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - text.rfind("\n", 0, e.position)
        raise SpecError(file, line, column, f"invalid YAML: {e.reason}") from None
    except yaml.YAMLError as e:
        raise SpecError(file, 1, 1, f"invalid YAML: {e}") from None
    _check_strings(root, file)
    return root


_UNSAFE_CHAR = re.compile("[\x00\ud800-\udfff]")


def _check_strings(root: yaml.Node | None, file: str) -> None:
    """Every string is text a process can be given: no NUL, no lone surrogate (which YAML's
    escapes can make, and which no file name, argument or UTF-8 message can carry)."""
    todo: list[yaml.Node | None] = [root]
    seen: set[int] = set()
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if (m := _UNSAFE_CHAR.search(node.value)) is not None:
                what = (
                    "a NUL character"
                    if m.group() == "\x00"
                    else (f"a lone surrogate (\\u{ord(m.group()):04x}), which is not a character")
                )
                raise _error_at(file, node, f"this string holds {what}; it cannot be passed "
                                "to a run")  # fmt: skip
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                todo += (key, value)


def error_at_field(text: str, file: str, field_name: str, message: str) -> SpecError:
    """A SpecError at a top-level field of an (already valid) experiment file: where its value
    is, or where the file starts when it is left out (its default applies). For refusals the
    coordinator can only make at submit, knowing its hosts."""
    try:
        root = compose_yaml(text, file)
    except SpecError:
        root = None
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if isinstance(key, yaml.ScalarNode) and key.value == field_name:
                return _error_at(file, value, message)
    return SpecError(file, 1, 1, message)


def load_spec(text: str, file: str = "<spec>") -> ExperimentSpec:
    """Parse and validate an experiment file; raise SpecError at the first problem."""
    root = compose_yaml(text, file)
    expected = "expected a mapping of experiment fields"
    if root is None:
        raise SpecError(file, 1, 1, f"{expected}, got an empty file")
    check = NodeChecker(file)
    if not isinstance(root, yaml.MappingNode):
        raise check.error(root, f"{expected}, got {check.got(root)}")
    fields = check.mapping(root, "experiment")
    check.known_keys(fields, _FIELDS)
    for name in _REQUIRED:
        if name not in fields:
            raise check.error(root, f"missing required field '{name}'")
    # An explicit null for an optional field means its default.
    given = {k: v for k, (_, v) in fields.items() if k in _REQUIRED or check.got(v) != "nothing"}
    parsers: dict[str, Callable[[yaml.Node], Any]] = {
        "name": check.name,
        "image": lambda n: check.string(n, "image"),
        "command": check.command,
        "resources": check.resources,
        "env": check.env,
        "outputs": check.outputs,
        "retries": lambda n: check.integer(n, "retries", 0),
        "infra_retries": lambda n: check.integer(n, "infra_retries", 0),
        "timeout": lambda n: check.converted(n, "timeout", parse_duration),
        "network": check.network,
        "sources": lambda n: posixpath.normpath(check.relative_path(n, "sources")),
        "progress": check.progress,
        "inputs": check.inputs,
        "build": check.build,
        "watch": check.watch,
        "placement": check.placement,
        "limits": check.limits,
        "on_failure": check.on_failure,
        "metrics": check.metrics,
    }
    values: dict[str, Any] = {}
    if "matrix" in given:  # first: command and env may refer to its parameters
        values["matrix"] = check.matrix(given["matrix"])
        check.params = [p for p, _ in values["matrix"]]
        check.matrix_values = values["matrix"]
    for name, node in given.items():
        if name not in values:
            values[name] = parsers[name](node)
    kwargs = {("timeout_seconds" if k == "timeout" else k): v for k, v in values.items()}
    return ExperimentSpec(**kwargs, file=file)


def count(values: Sequence[ParamValue]) -> int:
    """How many values: for a range too, however large (len() refuses beyond 2**63)."""
    if isinstance(values, range):
        step = values.step
        return max(0, (values.stop - values.start + step - (1 if step > 0 else -1)) // step)
    return len(values)


def run_count(spec: ExperimentSpec) -> int:
    """How many runs the matrix makes (expand() gives them indexes 0..n-1), without making them."""
    return math.prod(count(values) for _, values in spec.matrix)


def max_runs() -> int:
    """The most runs one submission may have: CONVOY_MAX_RUNS, default DEFAULT_MAX_RUNS."""
    given = os.environ.get("CONVOY_MAX_RUNS", "")
    return int(given) if given.isdigit() and int(given) > 0 else DEFAULT_MAX_RUNS


def _has_value(values: Sequence[ParamValue], v: ParamValue) -> bool:
    if isinstance(values, range):
        return type(v) is int and v in values
    return any(type(a) is type(v) and a == v for a in values)


def expand(spec: ExperimentSpec) -> list[RunSpec]:
    """One RunSpec per matrix combination, the last parameter varying fastest."""
    names = [name for name, _ in spec.matrix]
    runs = []
    for index, combo in enumerate(itertools.product(*(values for _, values in spec.matrix))):
        params = dict(zip(names, combo, strict=True))
        texts = {k: param_text(v) for k, v in params.items()}
        if isinstance(spec.command, str):
            command: str | tuple[str, ...] = _substitute(spec.command, texts, quote=True)
        else:
            command = tuple(_substitute(arg, texts, quote=False) for arg in spec.command)
        env = {k: _substitute(v, texts, quote=False) for k, v in spec.env}
        runs.append(RunSpec(index=index, params=params, command=command, env=env))
    return runs
