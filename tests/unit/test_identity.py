"""Run keys and the decision to run or reuse (pure: no store, no engine)."""

from __future__ import annotations

from convoy.coordinator.runs.identity import (
    PARTS,
    Earlier,
    KeyMaker,
    Memo,
    Memory,
    key_parts,
    run_key,
)


def parts(**changes: object) -> dict[str, str]:
    given: dict[str, object] = {
        "revision": "rev1", "inputs": {}, "image_id": "sha256:aa", "build_key": "",
        "command": "python3 sim.py --rho 0.5", "params": {"rho": 0.5}, "env": {},
        "network": "none", "outputs": ["results/"],
    }  # fmt: skip
    given.update(changes)
    return key_parts(**given)  # type: ignore[arg-type]


def earlier(run_id: str, p: dict[str, str], state: str = "succeeded", **kw: object) -> Earlier:
    return Earlier(run_id, state, run_key(p), p, str(kw.get("reused_from", "")),
                   bool(kw.get("has_results", True)))  # fmt: skip


def test_every_part_changes_the_key_and_is_named() -> None:
    base = parts()
    variants = {
        "sources": parts(revision="rev2"), "inputs": parts(inputs={"data": "r9"}),
        "image": parts(image_id="sha256:bb"), "build": parts(build_key="k"),
        "command": parts(command="python3 sim.py --rho 0.6"), "params": parts(params={"rho": 1}),
        "env": parts(env={"A": "1"}), "network": parts(network="bridge"),
        "outputs": parts(outputs=["out/"]),
    }  # fmt: skip
    assert set(variants) == set(PARTS)
    for name, v in variants.items():
        assert run_key(v) != run_key(base), name
        memo = Memory([earlier("e-1.00", base)]).decide(v)
        if name == "params":  # other values: other runs, compared with none
            assert memo == Memo(text="no earlier run of these parameter values")
        else:
            assert memo.compared == "e-1.00" and memo.changed == (name,), name
            assert not memo.reuse and memo.text == f"changed since e-1.00: {name}"


def test_one_true_and_one_point_zero_are_different_values() -> None:
    keys = {run_key(parts(params={"x": v})) for v in (1, 1.0, True, "1")}
    assert len(keys) == 4


def test_the_key_does_not_depend_on_the_order_of_names() -> None:
    a = parts(params={"a": 1, "b": 2}, env={"X": "1", "Y": "2"}, outputs=["a", "b"])
    b = parts(params={"b": 2, "a": 1}, env={"Y": "2", "X": "1"}, outputs=["b", "a"])
    assert run_key(a) == run_key(b)


def test_a_succeeded_run_of_the_same_key_is_reused_unless_forced() -> None:
    p = parts()
    memory = Memory([earlier("q-1.00", p)])
    memo = memory.decide(p)
    assert memo.reuse == "q-1.00" and "already done" in memo.text
    forced = memory.decide(p, force=True)
    assert not forced.reuse and forced.forced and "q-1.00" in forced.text


def test_the_latest_succeeded_run_is_reused_and_a_reuse_points_at_the_origin() -> None:
    p = parts()
    memory = Memory([earlier("q-1.00", p), earlier("q-2.00", p, reused_from="q-1.00"),
                     earlier("q-3.00", p, state="failed")])  # fmt: skip
    memo = memory.decide(p)
    assert memo.reuse == "q-1.00" and memo.compared == "q-2.00"


def test_only_a_succeeded_run_with_its_results_counts() -> None:
    p = parts()
    for state, has, said in [("failed", True, "ended failed"), ("running", True, "still running"),
                             ("succeeded", False, "results folder is gone")]:  # fmt: skip
        memo = Memory([earlier("q-1.00", p, state=state, has_results=has)]).decide(p)
        assert not memo.reuse and memo.compared == "q-1.00" and said in memo.text, state


def test_new_parameter_values_run_and_say_so() -> None:
    memory = Memory([earlier("q-1.00", parts())])
    memo = memory.decide(parts(params={"rho": 0.9}, command="python3 sim.py --rho 0.9"))
    assert memo == Memo(text="no earlier run of these parameter values")


def test_runs_stored_before_keys_are_not_compared() -> None:
    old = Earlier("q-1.00", "succeeded", "", {}, "", True)
    assert Memory([old]).decide(parts()).compared == ""


def test_a_memo_survives_its_json() -> None:
    memo = Memo(reuse="", compared="q-1.00", changed=("sources", "env"), text="t", forced=True)
    assert Memo.from_json(memo.to_json()) == memo
    assert Memo.from_json("") is None


def test_a_submission_s_key_maker_gives_the_parts_key_parts_gives() -> None:
    shared = {"revision": "rev1", "inputs": {"d": "r2"}, "image_id": "sha256:aa",
              "build_key": "bk", "network": "none", "outputs": ["b", "a"]}  # fmt: skip
    maker = KeyMaker(**shared)  # type: ignore[arg-type]
    for command, params, env in [("run 1", {"x": 1}, {"A": "1"}), (("run", "2"), {"x": 2}, {}),
                                 ("run 1", {"x": 1.0}, {"A": "1"})]:  # fmt: skip
        assert maker.parts(command, params, env) == key_parts(
            command=command,
            params=params,
            env=env,
            **shared,  # type: ignore[arg-type]
        )
