"""Metrics: the values an experiment file's `metrics:` declares (convoy.spec.MetricSpec), read
from a run's results folder.

The coordinator reads them when it writes the folder and keeps them in run.json (`metrics`,
`metrics_missing`, `metrics_declared`), so that the API, the CLI and the folder itself agree. A
metric that cannot be read is None, with why in `missing`: a run's metrics never fail it.

A value is a number when it reads as one (JSON numbers; text such as `12` or `1.5e-3`), else
text; NaN and the infinities are None (a table or a mean cannot use them).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convoy.errors import ConvoyError
from convoy.spec import MetricSpec, load_spec

Value = int | float | str
MAX_FILE_BYTES = 64 << 20  # a JSON file is read whole: larger ones are not read
OUTPUT_LOG = "output.log"

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


class Unread(Exception):
    """Why a metric has no value."""


@dataclass(frozen=True)
class MetricsRead:
    """A run's metrics: name -> value (None when it could not be read), why each None is."""

    values: dict[str, Value | None] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    declared: dict[str, dict[str, str]] = field(default_factory=dict)  # what they were read by

    def fields(self) -> dict[str, Any]:
        """As run.json holds them."""
        return {"metrics": self.values, "metrics_missing": self.missing,
                "metrics_declared": self.declared}  # fmt: skip


def declared_in(spec_yaml: str, spec_path: str) -> tuple[MetricSpec, ...]:
    """The metrics a submission's stored experiment file declares (none when it no longer
    reads as one: stored by another version of convoy)."""
    try:
        return load_spec(spec_yaml, spec_path).metrics
    except ConvoyError:
        return ()


def declared(metrics: Sequence[MetricSpec]) -> dict[str, dict[str, str]]:
    """Name -> declaration: how run.json says its metrics were read."""
    return {m.name: m.declared() for m in metrics}


def value_of(given: object) -> Value:
    """A number or text from what a JSON file, a CSV cell or a regex gave; Unread if neither."""
    if isinstance(given, bool):
        return "true" if given else "false"  # as YAML and convoy's tables write booleans
    if isinstance(given, int):
        return given
    if isinstance(given, float):
        if not math.isfinite(given):
            raise Unread(f"{given} is not a finite number")
        return given
    if isinstance(given, str):
        text = given.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _NUMBER.fullmatch(text):
            return value_of(float(text))  # 1e999 is not finite
        if _NOT_FINITE.fullmatch(text):
            raise Unread(f"{text} is not a finite number")
        if not text:
            raise Unread("it is empty")
        return text
    if given is None:
        raise Unread("it is null")
    kind = "an object" if isinstance(given, dict) else "a list"
    raise Unread(f"it is {kind}, not a number or text")


def read_metrics(folder: Path, metrics: Sequence[MetricSpec]) -> MetricsRead:
    """The metrics of the run whose results are in `folder` (its own, or the one it links to)."""
    values: dict[str, Value | None] = {}
    missing: dict[str, str] = {}
    files: dict[tuple[str, str], object] = {}  # (file, "json"|"csv") -> its content, or Unread
    outputs = [m for m in metrics if m.output]
    found = _last_matches(folder, outputs) if outputs else {}
    for m in metrics:
        try:
            if m.output:
                got = found[m.name]
                if isinstance(got, Unread):
                    raise got
                values[m.name] = value_of(got)
                continue
            kind = "json" if m.key else "csv"
            if (m.file, kind) not in files:
                try:
                    files[m.file, kind] = (_read_json if m.key else _read_csv)(folder, m.file)
                except Unread as e:
                    files[m.file, kind] = e
            content = files[m.file, kind]
            if isinstance(content, Unread):
                raise content
            if m.key:
                values[m.name] = _at_key(content, m.key)
            else:
                assert isinstance(content, _LastRow)
                values[m.name] = content.cell(m.column)
        except Unread as e:
            values[m.name] = None
            missing[m.name] = f"{m.file}: {e}" if m.file else str(e)
    return MetricsRead(values, missing, declared(metrics))


def from_run_json(meta: object, metrics: Sequence[MetricSpec]) -> MetricsRead | None:
    """The metrics run.json holds, if they were read as `metrics` declares (None otherwise:
    read before metrics were declared so, or before convoy read metrics)."""
    if not isinstance(meta, dict) or meta.get("metrics_declared") != declared(metrics):
        return None
    values, missing = meta.get("metrics"), meta.get("metrics_missing")
    if not isinstance(values, dict) or not isinstance(missing, dict):
        return None
    return MetricsRead(dict(values), dict(missing), declared(metrics))


def metrics_of_folder(folder: Path, metrics: Sequence[MetricSpec]) -> MetricsRead:
    """A results folder's metrics as `metrics` declares them: those its run.json holds when
    they were read so, else read again from its files (a run already done, whose folder is an
    earlier submission's, that declared other metrics)."""
    try:
        meta = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        meta = None
    kept = from_run_json(meta, metrics)
    return kept if kept is not None else read_metrics(folder, metrics)


# ---- reading ---------------------------------------------------------------------------------


def _open(folder: Path, rel: str) -> Path:
    """The file `rel` of the run's folder, refused when a link leads it out of the folder."""
    top = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(top, rel))
    if real == top:
        raise Unread("not a file")
    if not real.startswith(top + os.sep):
        raise Unread("it leads out of the run's results folder")
    if not os.path.exists(real):
        raise Unread("no such file in the run's results")
    if not os.path.isfile(real):
        raise Unread("not a file")
    return Path(real)


def _read_json(folder: Path, rel: str) -> object:
    path = _open(folder, rel)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise Unread(f"over {MAX_FILE_BYTES >> 20} MiB: not read for metrics")
        return json.loads(path.read_bytes())
    except OSError as e:
        raise Unread(f"cannot be read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise Unread(f"not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except ValueError as e:  # not UTF-8
        raise Unread(f"not JSON ({e})") from None


def _at_key(doc: object, key: str) -> Value:
    here = doc
    walked: list[str] = []
    for part in key.split("."):
        where = ".".join(walked) or "the top"
        if isinstance(here, dict):
            if part not in here:
                raise Unread(f"no key {'.'.join([*walked, part])!r}")
            here = here[part]
        elif isinstance(here, list):
            if not _INTEGER.fullmatch(part):
                raise Unread(f"{where} is a list: {part!r} is not an index of it")
            if not -len(here) <= int(part) < len(here):
                raise Unread(f"{where} is a list of {len(here)}: no item {part}")
            here = here[int(part)]
        else:
            raise Unread(f"{where} is neither an object nor a list: no key {part!r} in it")
        walked.append(part)
    try:
        return value_of(here)
    except Unread as e:
        raise Unread(f"{key}: {e}") from None


@dataclass(frozen=True)
class _LastRow:
    header: list[str]
    row: list[str] | None  # None: the file has no row under its header

    def cell(self, column: str) -> Value:
        if column not in self.header:
            named = ", ".join(self.header[:20]) + (" ..." if len(self.header) > 20 else "")
            raise Unread(f"no column {column!r} (its columns: {named})")
        if self.row is None:
            raise Unread("no row under its header")
        at = self.header.index(column)
        if at >= len(self.row):
            raise Unread(f"its last row has no {column!r} cell")
        try:
            return value_of(self.row[at])
        except Unread as e:
            raise Unread(f"{column} of its last row: {e}") from None


def _read_csv(folder: Path, rel: str) -> _LastRow:
    """The header and the last row (blank lines skipped); `.tsv` files are tab-separated."""
    path = _open(folder, rel)
    delimiter = "\t" if rel.lower().endswith(".tsv") else ","
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next((r for r in reader if r), None)
            if header is None:
                raise Unread("empty: no header row")
            last = None
            for row in reader:
                if row:
                    last = row
        return _LastRow([h.strip() for h in header], last)
    except OSError as e:
        raise Unread(f"cannot be read ({e.strerror})") from None
    except csv.Error as e:
        raise Unread(f"not CSV ({e})") from None


def _lines(path: Path) -> Iterator[str]:
    with open(path, "rb") as f:
        for raw in f:
            yield raw.decode("utf-8", "replace").rstrip("\r\n")


def _last_matches(folder: Path, metrics: Sequence[MetricSpec]) -> Mapping[str, str | Unread]:
    """Each output metric's text: its group in the last match on the last line of output.log
    that one matches (a match whose group took no part does not count); one pass for all."""
    try:
        path = _open(folder, OUTPUT_LOG)
    except Unread as e:
        return {m.name: Unread(f"{OUTPUT_LOG}: {e}") for m in metrics}
    patterns = [(m.name, re.compile(m.output)) for m in metrics]
    found: dict[str, str | Unread] = {}
    try:
        for line in _lines(path):
            for name, pattern in patterns:
                for match in pattern.finditer(line):
                    group = "value" if "value" in pattern.groupindex else 1
                    if match.group(group) is not None:
                        found[name] = match.group(group)
    except OSError as e:
        return {m.name: Unread(f"{OUTPUT_LOG} cannot be read ({e.strerror})") for m in metrics}
    for m in metrics:
        found.setdefault(m.name, Unread(f"no line of {OUTPUT_LOG} matches {m.output!r}"))
    return found
