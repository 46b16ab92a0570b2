"""Mutated experiment files (hypothesis): every mutation of a valid file either loads or is a
SpecError that points into the file, in well under a few seconds; never another exception.

The mutations are the ones an attacker or a typo makes: characters inserted, dropped or
replaced (YAML's own punctuation weighted in), a line duplicated, moved or indented, a value
swapped for another kind of YAML value (huge numbers, deep nesting, anchors, tags, escapes that
make NULs or lone surrogates). What loads is then counted and its first runs expanded, as the
coordinator does at submit.
"""

from __future__ import annotations

import itertools
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convoy.errors import SpecError
from convoy.spec import expand, load_spec, run_count

BASE = """\
name: queue
image: convoy/python:3.11
command: python3 sim.py --rho ${rho} --seed ${rep}
matrix:
  rho: [0.5, 0.8, 0.9]
  rep: {range: [0, 4]}
  label: [a, "b c"]
resources: {cpus: 1, memory: 256MiB, gpus: 0}
env: {OMP_NUM_THREADS: "1", LABEL: "rho-${rho}"}
outputs: [results/, "*.csv"]
retries: 1
infra_retries: 3
timeout: 5m
network: none
sources: .
inputs: {traces: ../data/traces}
progress: '\\((?P<percent>\\d+)%\\)'
build: make
watch: {debounce: 0.5s, on_change: cancel, smoke: {rep: [0]}}
placement: {labels: {rack: b}, policy: spread}
"""
LINES = BASE.splitlines(keepends=True)

PUNCTUATION = [*":{}[],&*!|>'\"%@`#-?\\\t\n ", "${", "}}", "\\u", "\\0", "\\ud800"]
VALUES = [
    "", "~", "null", "-1", "0", "1e400", "-0.0", ".nan", ".inf", "9" * 40, "0x7fffffffffffffff",
    "[]", "{}", "[[[[[[[[]]]]]]]]", "{a: {b: {c: {d: {}}}}}", "&a [*a]", "!!binary aGk=",
    "!!python/object:os.system x", "'\\ud800'", '"\\ud800"', '"a\\0b"', '"\\x1b[2J"', "yes",
    "{range: [0, 100000000000000000000]}", "{range: [0, 10000000]}", "{range: [5, 1]}",
    "{range: [0, 1, 0]}", "[" + "1, " * 200 + "1]", "<<: {x: 1}", "? complex\n: key",
    "'" + "x" * 5000 + "'", "2026-12-07", "0o777", "-", "|\n  block\n", "${rho}${rep}",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["insert", "drop", "replace", "line", "value", "indent"]))
        line = lines[i]
        at = draw(st.integers(0, len(line)))
        if kind == "insert":
            piece = draw(st.sampled_from(PUNCTUATION) | st.text(max_size=3))
            lines[i] = line[:at] + piece + line[at:]
        elif kind == "drop":
            end = draw(st.integers(at, len(line)))
            lines[i] = line[:at] + line[end:]
        elif kind == "replace":
            lines[i] = line[:at] + draw(st.sampled_from(PUNCTUATION)) + line[at + 1 :]
        elif kind == "line":
            j = draw(st.integers(0, len(lines) - 1))
            lines.insert(j, lines.pop(i) if draw(st.booleans()) else line)
        elif kind == "value" and ":" in line:
            key = line[: line.index(":") + 1]
            lines[i] = f"{key} {draw(st.sampled_from(VALUES))}\n"
        else:
            lines[i] = " " * draw(st.integers(1, 4)) + line
    return "".join(lines)


def _check(text: str) -> None:
    t0 = time.monotonic()
    try:
        spec = load_spec(text, "fuzz.yaml")
    except SpecError as e:
        assert e.file == "fuzz.yaml" and e.message
        assert 1 <= e.line <= text.count("\n") + 2, (e.line, str(e))
        assert e.column >= 1, str(e)
        assert "Traceback" not in e.message
    else:
        total = run_count(spec)
        assert total >= 0
        runs = list(itertools.islice(expand(spec), 50))
        assert len(runs) == min(total, 50)
    assert time.monotonic() - t0 < 3.0, "a mutation took seconds to judge"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_every_mutation_loads_or_is_refused_at_a_place(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_at_all_loads_or_is_refused_at_a_place(text: str) -> None:
    _check(text)


def test_the_base_file_is_valid() -> None:
    """The mutations start from a file that loads: else they would test nothing but refusals."""
    spec = load_spec(BASE, "fuzz.yaml")
    assert run_count(spec) == 24
