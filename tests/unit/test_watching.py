"""Watch mode's pure parts: the debouncer, the spec's `watch:` field."""

from __future__ import annotations

import pytest

from convoy.errors import SpecError
from convoy.spec import WatchSpec, load_spec, smoke_indexes
from convoy.watching import Debouncer

HEAD = "name: w\nimage: i\ncommand: c\nmatrix:\n  rho: [0.5, 0.8]\n  rep: [0, 1, 2]\n"


def test_a_burst_fires_once_after_it_goes_quiet() -> None:
    d = Debouncer(0.1)
    assert not d.due(0.0) and d.wait_s(0.0) is None
    for i in range(50):  # 50 saves, 18 ms apart
        d.note(f"f{i % 3}", i * 0.018)
        assert not d.due(i * 0.018 + 0.05)
    assert d.wait_s(0.9) == pytest.approx(0.1 - (0.9 - 49 * 0.018))
    assert d.due(49 * 0.018 + 0.101)
    assert d.take() == {"f0", "f1", "f2"} and not d.due(10.0)


def test_watch_field_and_smoke_runs() -> None:
    spec = load_spec(HEAD + "watch:\n  debounce: 0.3\n  on_change: finish\n  smoke: {rep: [0]}\n")
    assert spec.watch == WatchSpec(debounce_s=0.3, on_change="finish", smoke=(("rep", (0,)),))
    assert smoke_indexes(spec) == [0, 3]  # rep=0 at each rho
    assert load_spec(HEAD).watch == WatchSpec()


def test_smoke_values_may_be_a_range_as_in_the_matrix() -> None:
    spec = load_spec(HEAD + "watch:\n  smoke: {rep: {range: [0, 2]}}\n")
    assert [(n, list(v)) for n, v in spec.watch.smoke] == [("rep", [0, 1])]
    assert smoke_indexes(spec) == [0, 1, 3, 4]


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        ("watch:\n  on_change: stop\n", "watch.on_change: expected 'cancel' (stop the superseded "
         "runs) or 'finish' (let them end), got 'stop'"),
        ("watch:\n  smoke: {seed: [0]}\n", "watch.smoke: 'seed' is not a matrix parameter "
         "(parameters: rho, rep)"),
        ("watch:\n  smoke: {rep: [7]}\n", "watch.smoke.rep: 7 is not one of the matrix's values "
         "for 'rep'"),
        ("watch:\n  smoke: {rep: {range: [2, 5]}}\n", "watch.smoke.rep: 3 is not one of the "
         "matrix's values for 'rep'"),
        ("watch:\n  debounced: 1\n", "unknown field 'debounced' in watch (did you mean "
         "'debounce'?)"),
    ],
)  # fmt: skip
def test_bad_watch_field_is_an_error_at_its_place(tail: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        load_spec(HEAD + tail)
    assert e.value.message == message and e.value.line == 8
