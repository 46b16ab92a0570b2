"""Experiment files that would exhaust the coordinator are refused where they are wrong (H2 and
the hostile-input findings): a matrix beyond the limit, a range beyond reason, a file too large
or nested too deeply; each a SpecError with its place, at once, using no memory to speak of."""

from __future__ import annotations

import time

import pytest

from convoy.errors import SpecError
from convoy.spec import count, load_spec, max_runs, run_count

HEAD = "name: big\nimage: img\ncommand: echo ${a} ${b}\n"


def refused(text: str) -> SpecError:
    t0 = time.monotonic()
    with pytest.raises(SpecError) as info:
        load_spec(text, "big.yaml")
    assert time.monotonic() - t0 < 5, "refusing it took too long"
    return info.value


def test_a_ten_million_run_matrix_is_refused_without_being_made() -> None:
    """10^7 runs killed the coordinator (MemoryError); now the matrix line says why."""
    e = refused(HEAD + "matrix:\n  a: {range: [0, 10000]}\n  b: {range: [0, 1000]}\n")
    assert (e.line, e.column) == (5, 3)
    assert "10,000,000 runs (10,000 x 1,000) is more than the 1,000,000" in e.message


def test_a_range_of_ten_to_the_twenty_is_refused_not_an_overflow_error() -> None:
    e = refused(HEAD + "matrix:\n  a: {range: [0, 100000000000000000000]}\n  b: [1]\n")
    assert "bounds beyond" in e.message and e.line == 5


def test_the_limit_can_be_set_and_a_sweep_within_it_loads_lazily(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVOY_MAX_RUNS", "100")
    assert max_runs() == 100
    refused(HEAD + "matrix:\n  a: {range: [0, 11]}\n  b: {range: [0, 10]}\n")
    monkeypatch.delenv("CONVOY_MAX_RUNS")
    spec = load_spec(HEAD + "matrix:\n  a: {range: [0, 1000]}\n  b: {range: [0, 1000]}\n")
    assert run_count(spec) == 1_000_000
    assert isinstance(spec.matrix[0][1], range)  # not a million values held


def test_count_of_a_range_needs_no_len() -> None:
    assert count(range(0, 10**15, 3)) == (10**15 + 2) // 3
    assert count(range(10, 0, -3)) == 4 and count(range(5, 5)) == 0
    assert count((1, 2, 3)) == 3


def test_a_file_over_the_limit_is_refused_at_once() -> None:
    """A 50 MB file took 42 s to end in RESOURCE_EXHAUSTED; now it is refused before parsing."""
    e = refused(HEAD + "# " + "x" * (5 << 20) + "\n")
    assert (e.line, e.column) == (1, 1) and "over 4 MiB" in e.message


def test_yaml_nested_too_deeply_is_a_spec_error_not_a_recursion_error() -> None:
    e = refused(HEAD + "env: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in e.message or "expected" in e.message


def test_a_long_list_of_values_is_checked_for_duplicates_in_linear_time() -> None:
    values = ", ".join(str(i) for i in range(200_000))
    t0 = time.monotonic()
    spec = load_spec(f"name: n\nimage: i\ncommand: echo ${{a}}\nmatrix: {{a: [{values}]}}\n")
    assert run_count(spec) == 200_000 and time.monotonic() - t0 < 20
    e = refused("name: n\nimage: i\ncommand: echo ${a}\nmatrix: {a: [1, 2, 1]}\n")
    assert "duplicate value 1" in e.message


@pytest.mark.parametrize(
    ("value", "what"),
    [('"\\ud800"', "lone surrogate (\\ud800)"), ('"a\\0b"', "NUL character")],
)
def test_a_string_no_process_can_take_is_refused_where_it_is(value: str, what: str) -> None:
    """A lone surrogate in a matrix value was accepted and left a submission half committed,
    its runs queued for ever; a NUL would fail on the host. Both are refused at their place."""
    e = refused(HEAD + f"matrix:\n  a: [1, {value}]\n  b: [1]\n")
    assert (e.line, e.column) == (5, 10)
    assert what in e.message


def test_a_recursive_alias_is_walked_once() -> None:
    """An alias that contains itself does not loop the string check."""
    e = refused(HEAD + "matrix: &m\n  a: [1]\n  b: *m\n")
    assert e.line >= 4


PLAIN = "name: small\nimage: img\ncommand: echo\n"


def test_limits_default_and_can_be_set() -> None:
    from convoy.spec import Limits

    assert load_spec(PLAIN, "e.yaml").limits == Limits(100_000, 50 << 30, 1 << 30)
    spec = load_spec(PLAIN + "limits: {output_files: 10, output_bytes: 1MiB, log_bytes: 4KiB}\n")
    assert spec.limits == Limits(10, 1 << 20, 4 << 10)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("limits: {output_files: 0}\n", (4, 24), "limits.output_files: expected an integer >= 1"),
        ("limits: {log_bytes: lots}\n", (4, 21), "limits.log_bytes: expected a memory size"),
        ("limits: {files: 3}\n", (4, 10), "unknown field 'files' in limits"),
    ],
)
def test_bad_limits_are_refused_at_their_place(
    text: str, where: tuple[int, int], what: str
) -> None:
    e = refused(PLAIN + text)
    assert (e.line, e.column) == where and what in e.message


def test_resources_disk_defaults_to_ten_gibibytes_and_can_be_set() -> None:
    assert load_spec(PLAIN, "e.yaml").resources.disk_bytes == 10 << 30
    assert load_spec(PLAIN + "resources: {disk: 50MiB}\n").resources.disk_bytes == 50 << 20
    e = refused(PLAIN + "resources: {disk: -1}\n")
    assert (e.line, e.column) == (4, 19) and "resources.disk" in e.message


def test_on_failure_defaults_to_never_stopping_and_takes_stop_after() -> None:
    from convoy.spec import OnFailure

    assert load_spec(PLAIN).on_failure == OnFailure(0)
    assert load_spec(PLAIN + "on_failure: {stop_after: 3}\n").on_failure == OnFailure(3)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("on_failure: {stop_after: 0}\n", (4, 26), "on_failure.stop_after: expected an integer"),
        ("on_failure: {stop_after: many}\n", (4, 26), "on_failure.stop_after: expected"),
        ("on_failure: {after: 3}\n", (4, 14), "unknown field 'after' in on_failure"),
        ("on_failure: 3\n", (4, 13), "on_failure"),
    ],
)
def test_bad_on_failure_is_refused_at_its_place(
    text: str, where: tuple[int, int], what: str
) -> None:
    e = refused(PLAIN + text)
    assert (e.line, e.column) == where and what in e.message
