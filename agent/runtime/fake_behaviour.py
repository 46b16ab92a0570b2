"""What one fake container does, read from its environment (see agent/runtime/fake.py).

The names are environment variables so that an experiment file sets them like any other
(``env: {CONVOY_FAKE_EXIT: "${code}"}``, matrix parameters included); a FakeRuntime's
constructor defaults fill in what a run's env leaves out.

    CONVOY_FAKE_DURATION     seconds it runs (float, default 0.1)
    CONVOY_FAKE_EXIT         its exit code (0..255, default 0)
    CONVOY_FAKE_OUTPUT       text it prints to output.log, line by line over its duration
    CONVOY_FAKE_LINES        print "line 1" ... "line N" instead of CONVOY_FAKE_OUTPUT
    CONVOY_FAKE_START_ERROR  start fails with RuntimeFailure and this message
    CONVOY_FAKE_DISK_FULL    "1": start fails with DiskFull
    CONVOY_FAKE_OOM          "1": at its end it is killed for memory (exit 137, oom_killed)
    CONVOY_FAKE_FILES        a JSON object, relative path -> text: files it writes into its
                             working directory as it ends (not when stopped or killed)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from convoy.errors import RuntimeFailure

PREFIX = "CONVOY_FAKE_"
DURATION = PREFIX + "DURATION"
EXIT = PREFIX + "EXIT"
OUTPUT = PREFIX + "OUTPUT"
LINES = PREFIX + "LINES"
START_ERROR = PREFIX + "START_ERROR"
DISK_FULL = PREFIX + "DISK_FULL"
OOM = PREFIX + "OOM"
FILES = PREFIX + "FILES"
NAMES = frozenset({DURATION, EXIT, OUTPUT, LINES, START_ERROR, DISK_FULL, OOM, FILES})

DEFAULT_DURATION = 0.1
OOM_EXIT_CODE = 137  # 128 + SIGKILL, as the kernel's OOM killer leaves it
STOP_EXIT_CODE = 143  # 128 + SIGTERM: a command that ends on the stop signal


@dataclass(frozen=True)
class Behaviour:
    duration: float = DEFAULT_DURATION
    exit_code: int = 0
    output: str = ""  # what it prints, spread over its duration
    start_error: str = ""
    disk_full: bool = False
    oom: bool = False
    files: tuple[tuple[str, str], ...] = ()  # (relative path, text), written as it ends

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines(keepends=True)

    def to_json(self) -> dict[str, Any]:
        return {"duration": self.duration, "exit_code": self.exit_code, "output": self.output,
                "oom": self.oom, "files": dict(self.files)}  # fmt: skip

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Behaviour:
        return cls(
            duration=float(raw["duration"]), exit_code=int(raw["exit_code"]),
            output=str(raw["output"]), oom=bool(raw["oom"]),
            files=tuple((str(k), str(v)) for k, v in dict(raw["files"]).items()),
        )  # fmt: skip


def behaviour_from_env(env: Mapping[str, str], defaults: Mapping[str, str]) -> Behaviour:
    """The behaviour `env` asks for, `defaults` filling in what it leaves out.
    RuntimeFailure naming the variable when a value is not of its form."""
    merged = {**{k: v for k, v in defaults.items() if k in NAMES}, **env}
    output = merged.get(OUTPUT, "")
    if merged.get(LINES, "").strip():
        count = _number(merged, LINES, int)
        if count < 0:
            raise RuntimeFailure(f"{LINES}: expected a count >= 0, got {count}")
        output = "".join(f"line {i}\n" for i in range(1, count + 1))
    duration = _number(merged, DURATION, float) if DURATION in merged else DEFAULT_DURATION
    if not duration >= 0:  # also NaN
        raise RuntimeFailure(f"{DURATION}: expected seconds >= 0, got {merged[DURATION]!r}")
    exit_code = _number(merged, EXIT, int) if EXIT in merged else 0
    if not 0 <= exit_code <= 255:
        raise RuntimeFailure(f"{EXIT}: expected an exit code 0..255, got {exit_code}")
    return Behaviour(
        duration=duration, exit_code=exit_code, output=output,
        start_error=merged.get(START_ERROR, ""), disk_full=_flag(merged, DISK_FULL),
        oom=_flag(merged, OOM), files=_files(merged.get(FILES, "")),
    )  # fmt: skip


def _number(env: Mapping[str, str], name: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(env[name].strip())
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise RuntimeFailure(f"{name}: expected {what}, got {env[name]!r}") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip()
    if value not in ("", "0", "1"):
        raise RuntimeFailure(f'{name}: expected "1" or "0", got {value!r}')
    return value == "1"


def _files(text: str) -> tuple[tuple[str, str], ...]:
    if not text.strip():
        return ()
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise RuntimeFailure(f"{FILES}: not JSON: {e}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise RuntimeFailure(f"{FILES}: expected a JSON object of path -> text")
    for path in raw:
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or ".." in parts:
            raise RuntimeFailure(f"{FILES}: {path!r} is not a relative path inside /work")
    return tuple(sorted(raw.items()))
