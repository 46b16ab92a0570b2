"""Some runs of an experiment's matrix, chosen on the command line: `--indexes 0,3,5-9` and
`--only NAME=VALUE` (repeated: values of one name are any of, names are all of), as the indexes
a submission takes. Values are matched as the experiment file writes them (`true`, `0.5`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from convoy.errors import UsageError
from convoy.spec import ExperimentSpec, ParamValue, param_text, run_count

SHOWN_VALUES = 10  # of a parameter, in an error


def parse_indexes(texts: Sequence[str], total: int) -> list[int]:
    """ "0,3,5-9" (and more such, one per --indexes) as sorted indexes, each below `total`."""
    out: set[int] = set()
    for text in texts:
        for item in text.split(","):
            part = item.strip()
            low, dash, high = part.partition("-")
            try:
                first, last = int(low), int(high) if dash else int(low)
            except ValueError:
                raise UsageError(f"--indexes: {part!r} is not an index or a range like 5-9"
                                 ) from None  # fmt: skip
            if first < 0 or last < first:
                raise UsageError(f"--indexes: {part!r}: indexes are 0 or more, ranges low-high")
            if last >= total:
                raise UsageError(f"--indexes: {part!r}: the matrix has {total} run"
                                 f"{'s' * (total != 1)} (indexes 0-{total - 1})")  # fmt: skip
            out.update(range(first, last + 1))
    return sorted(out)


def _positions(name: str, values: Sequence[ParamValue], wanted: list[str]) -> list[int]:
    """Where the wanted values (as text) are among a parameter's values."""
    found: list[int] = []
    for text in wanted:
        if isinstance(values, range):
            try:
                v = int(text)
            except ValueError:
                v = None
            hits = [values.index(v)] if v is not None and v in values else []
        else:
            hits = [i for i, v in enumerate(values) if param_text(v) == text]
        if not hits:
            shown = ", ".join(param_text(v) for v in itertools.islice(values, SHOWN_VALUES))
            more = " ..." if len(values) > SHOWN_VALUES else ""
            raise UsageError(f"--only {name}={text}: {name} has no such value; its values: "
                             f"{shown}{more}")  # fmt: skip
        found.extend(hits)
    return sorted(set(found))


def only_indexes(spec: ExperimentSpec, only: Sequence[str]) -> list[int]:
    """The indexes of the runs whose parameters have the values `only` names."""
    wanted: dict[str, list[str]] = {}
    names = [name for name, _ in spec.matrix]
    for item in only:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise UsageError(f"--only {item!r}: expected NAME=VALUE")
        if name not in names:
            known = ", ".join(names) or "none (the experiment has no matrix)"
            raise UsageError(f"--only {item!r}: no parameter {name!r}; the parameters: {known}")
        wanted.setdefault(name, []).append(value.strip())
    axes = [
        _positions(name, values, wanted[name]) if name in wanted else range(len(values))
        for name, values in spec.matrix
    ]
    sizes = [len(values) for _, values in spec.matrix]
    out = []
    for combo in itertools.product(*axes):  # the last parameter varies fastest
        index = 0
        for position, size in zip(combo, sizes, strict=True):
            index = index * size + position
        out.append(index)
    return out


def chosen(spec: ExperimentSpec, indexes: Sequence[str], only: Sequence[str]) -> list[int]:
    """The indexes --indexes and --only choose (both given: the runs both choose); [] when
    neither is given (all runs)."""
    if not indexes and not only:
        return []
    picked = set(parse_indexes(indexes, run_count(spec))) if indexes else None
    if only:
        matching = only_indexes(spec, only)
        picked = set(matching) if picked is None else picked & set(matching)
    assert picked is not None
    if not picked:
        raise UsageError("--indexes and --only together choose no run")
    return sorted(picked)
