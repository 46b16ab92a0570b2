"""`convoy run --indexes/--only`: the runs of a matrix chosen on the command line."""

from __future__ import annotations

import pytest

from convoy.cli.subset import chosen, only_indexes, parse_indexes
from convoy.errors import UsageError
from convoy.spec import expand, load_spec

SPEC = load_spec("""
name: q
image: x
command: run ${rho} ${rep} ${flag}
matrix:
  rho: [0.5, 0.8, 0.9]
  rep: {range: [0, 4]}
  flag: [true, false]
""")


def params_of(indexes: list[int]) -> list[dict[str, object]]:
    runs = expand(SPEC)
    return [runs[i].params for i in indexes]


def test_only_picks_the_runs_with_those_values_in_matrix_order() -> None:
    got = only_indexes(SPEC, ["rho=0.9"])
    assert len(got) == 8 and all(p["rho"] == 0.9 for p in params_of(got))
    assert got == sorted(got)


def test_one_name_twice_is_any_of_two_names_all_of() -> None:
    got = only_indexes(SPEC, ["rho=0.5", "rho=0.9", "rep=3", "flag=true"])
    assert [(p["rho"], p["rep"], p["flag"]) for p in params_of(got)] == [
        (0.5, 3, True), (0.9, 3, True)
    ]  # fmt: skip


def test_an_unknown_name_or_value_is_refused_naming_what_there_is() -> None:
    with pytest.raises(UsageError, match="no parameter 'beta'; the parameters: rho, rep, flag"):
        only_indexes(SPEC, ["beta=1"])
    with pytest.raises(UsageError, match=r"rho has no such value; its values: 0.5, 0.8, 0.9"):
        only_indexes(SPEC, ["rho=0.7"])
    with pytest.raises(UsageError, match="no such value; its values: 0, 1, 2, 3"):
        only_indexes(SPEC, ["rep=4"])
    with pytest.raises(UsageError, match="expected NAME=VALUE"):
        only_indexes(SPEC, ["rho"])


def test_indexes_take_lists_and_ranges_within_the_matrix() -> None:
    assert parse_indexes(["0,3", "5-7", "3"], 24) == [0, 3, 5, 6, 7]
    for bad, said in [("x", "not an index"), ("7-5", "ranges low-high"), ("-1", "not an index"),
                      ("24", "the matrix has 24 runs")]:  # fmt: skip
        with pytest.raises(UsageError, match=said):
            parse_indexes([bad], 24)


def test_both_given_choose_the_runs_both_choose() -> None:
    assert chosen(SPEC, [], []) == []
    both = chosen(SPEC, ["0-7"], ["flag=false"])
    assert both == [1, 3, 5, 7]
    with pytest.raises(UsageError, match="choose no run"):
        chosen(SPEC, ["0"], ["rho=0.9"])
