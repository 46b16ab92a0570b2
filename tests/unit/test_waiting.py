"""Why a queued run waits: scheduler.why_waiting's sentence, and the lifecycle's waiting_for
(what the last placement pass left: room, holds, hosts down, placement)."""

from __future__ import annotations

from convoy.coordinator.runs.events import (
    Dispatch,
    HostSilent,
    HostStatus,
    Submitted,
    Tick,
)
from convoy.coordinator.runs.scheduler import HOSTS_SAID, HostView, Units, why_waiting
from convoy.coordinator.runs.why import why_of
from convoy.spec import PlacementSpec
from convoy.states import RunState

from .lifecycle_world import Driver, Launch, make_run
from .test_lifecycle import running

GiB = 1 << 30


def cpus(n: float, mem: int = 0) -> Units:
    return Units(round(n * 1000), mem, 0)


def test_it_says_what_it_needs_and_what_each_host_lacks() -> None:
    """The issue's example: short of cpus here, held for a run ahead there, a third away."""
    hosts = [
        HostView("local", cpus(4), cpus(2)),
        HostView("h1", cpus(8), cpus(6)),
        HostView("h2", cpus(8), up=False, why="is unreachable"),
    ]
    text = why_waiting(cpus(4), hosts, held_for={"h1": "des-3.07"}, run_id="des-3.09")
    assert text == ("needs 4 cpus; h1 is held for des-3.07, h2 is unreachable, "
                    "local has 2 cpus free")  # fmt: skip


def test_only_the_resources_a_host_lacks_are_said() -> None:
    hosts = [HostView("h1", cpus(8, 4 * GiB), cpus(1, 4 * GiB - (256 << 20)))]
    assert why_waiting(cpus(2, GiB), hosts) == (
        "needs 2 cpus, 1.0GiB memory; h1 has 256.0MiB memory free"
    )


def test_a_host_held_for_the_run_itself_is_its_own() -> None:
    hosts = [HostView("h1", cpus(4), cpus(3))]
    assert why_waiting(cpus(4), hosts, held_for={"h1": "r7"}, run_id="r7") == (
        "needs 4 cpus; h1 has 1 cpus free (held for it as runs there end)"
    )


def test_a_host_too_small_for_it_says_what_it_has() -> None:
    hosts = [HostView("big", cpus(8), cpus(8)), HostView("small", cpus(2))]
    assert why_waiting(cpus(4), hosts) == (
        "needs 4 cpus; big has 0 cpus free, small has 2 cpus in all"
    )


def test_hosts_its_placement_rules_out_are_named_apart() -> None:
    hosts = [HostView("h1", cpus(2), cpus(2)), HostView("h2", cpus(8)), HostView("h3", cpus(8))]
    assert why_waiting(cpus(2), hosts, only=frozenset({"h1"})) == (
        "needs 2 cpus; h1 has 0 cpus free; its placement or network rules out h2, h3"
    )


def test_a_run_with_room_now_is_said_to_be_placed_next() -> None:
    text = why_waiting(cpus(1), [HostView("h1", cpus(2))])
    assert text.startswith("needs 1 cpus; h1 has room for it now")


def test_many_hosts_are_counted_past_the_first_few() -> None:
    hosts = [HostView(f"h{i:02d}", cpus(1), cpus(1)) for i in range(HOSTS_SAID + 3)]
    text = why_waiting(cpus(1), hosts)
    assert text.count("has 0 cpus free") == HOSTS_SAID and text.endswith(" and 3 more")


# ---- in the lifecycle ------------------------------------------------------------------------


def full_pair() -> tuple[Driver, list[str]]:
    """h1 and h2 of 2 cpus each, both full of 2-cpu runs; a third queued."""
    d = Driver()
    d.add_hosts("h1", "h2")
    d.up("h1", 0.0)
    d.up("h2", 0.0)
    runs = [make_run(i, cpus=2) for i in range(3)]
    running(d, *runs)
    return d, [r.id for r in runs]


def test_a_run_that_does_not_fit_says_each_host_is_full() -> None:
    d, (r0, _, r2) = full_pair()
    assert d.life.waiting_for(r0) == ""  # running: it waits for nothing
    assert d.life.runs[r2].state is RunState.QUEUED
    assert (
        d.life.waiting_for(r2)
        == "needs 2 cpus, 1.0MiB memory; h1 has 0 cpus free, h2 has 0 cpus free"
    )


def test_a_big_run_holds_a_host_and_the_runs_behind_say_so() -> None:
    """A 4-cpu run holds the host closest to fitting it; a small run behind it that would fit
    there says the host is held for the big one."""
    d = Driver()
    d.add_hosts("h1")
    d.up("h1", 0.0, cpus=4)
    small = make_run(0, cpus=2)
    running(d, small)
    big, behind = make_run(1, cpus=4), make_run(2, cpus=1)
    d.feed(Submitted((big, behind)))
    assert not d.of(Launch, d.feed(Dispatch(1.0)))
    assert d.life.waiting_for(big.id) == (
        "needs 4 cpus, 1.0MiB memory; h1 has 2 cpus free (held for it as runs there end)"
    )
    assert d.life.waiting_for(behind.id) == "needs 1 cpus, 1.0MiB memory; h1 is held for s-1.01"


def test_hosts_away_lost_or_refusing_say_so() -> None:
    d = Driver()
    d.add_hosts("h1", "h2", "h3")
    for h in ("h1", "h2", "h3"):
        d.up(h, 0.0)
    d.feed(HostSilent("h1", 1.0))
    d.feed(HostSilent("h2", 1.0))
    d.feed(Tick(100.0))  # lost after the grace
    d.add_hosts("h4", at=100.0)  # never answers (within its grace)
    d.feed(HostSilent("h1", 1.0))
    d.up("h1", 101.0)
    d.feed(HostSilent("h1", 102.0))  # unreachable again, within the grace
    d.feed(HostStatus("h3", accepting=False, why="its disk is full"))
    run = make_run(0)
    d.feed(Submitted((run,)))
    d.feed(Dispatch(103.0))
    assert d.life.waiting_for(run.id) == (
        "needs 1 cpus, 1.0MiB memory; h1 is unreachable, h2 is lost, "
        "h3 takes no new runs (its disk is full), h4 is not connected yet"
    )


def test_its_placement_is_said_and_the_reason_follows_each_event() -> None:
    d = Driver()
    d.add_hosts("h1", "h2")
    d.up("h1", 0.0, cpus=1)
    d.up("h2", 0.0, cpus=4)
    first, second = make_run(0), make_run(1)
    d.feed(Submitted((first, second), PlacementSpec(hosts=("h1",))))
    (launch,) = d.of(Launch, d.feed(Dispatch(1.0)))
    assert d.life.waiting_for(second.id) == (
        "needs 1 cpus, 1.0MiB memory; h1 has 0 cpus free (held for it as runs there end); its "
        "placement or network rules out h2"
    )
    d.feed(HostSilent("h1", 2.0))  # the next event: worked out again
    assert "h1 is unreachable" in d.life.waiting_for(second.id)
    assert launch.run.id == first.id


def test_runs_alike_share_one_reason() -> None:
    """10^4 queued runs of one kind: their reason is worked out once between two events."""
    d = Driver()
    d.add_hosts("h1")
    d.up("h1", 0.0, cpus=1)
    runs = [make_run(i) for i in range(10_000)]
    d.feed(Submitted(tuple(runs)))
    d.feed(Dispatch(1.0))
    texts = {d.life.waiting_for(r.id) for r in runs[1:]}
    assert texts == {"needs 1 cpus, 1.0MiB memory; h1 has 0 cpus free"}
    assert len(d.life._waits) == 1


def test_a_run_no_host_can_take_says_so_before_it_ends_unplaceable() -> None:
    """Before the pass that ends it unplaceable, its reason already says why."""
    d = Driver()
    d.add_hosts("h1")
    d.up("h1", 0.0)
    run = make_run(0)
    d.feed(Submitted((run,), PlacementSpec(hosts=("h9",))))
    assert d.life.waiting_for(run.id).startswith("nowhere to go: no host matches its placement")


def test_convoy_why_adds_what_a_queued_run_waits_for() -> None:
    run = make_run(0)
    text = why_of(run, waiting_for="needs 1 cpus; h1 has 0 cpus free").text
    assert text.endswith("\n  it waits: needs 1 cpus; h1 has 0 cpus free")
    assert "it waits" not in why_of(run).text
