"""Placement: which queued run goes to which host. Pure; no I/O.

Capacity is counted in integer units (millicpus, bytes, gpus) so that packing many fractional-cpu
runs never drifts. The scheduler never over-commits a host: a run is placed only where its whole
request fits in what is left after every allocation already held and every placement made in the
same pass.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from convoy.sizes import human_bytes
from convoy.spec import Resources


@dataclass(frozen=True, order=True)
class Units:
    millicpus: int = 0
    memory_bytes: int = 0
    gpus: int = 0

    @classmethod
    def of(cls, r: Resources) -> Units:
        return cls(round(r.cpus * 1000), r.memory_bytes, r.gpus)

    def __add__(self, o: Units) -> Units:
        return Units(
            self.millicpus + o.millicpus, self.memory_bytes + o.memory_bytes, self.gpus + o.gpus
        )

    def __sub__(self, o: Units) -> Units:
        return Units(
            self.millicpus - o.millicpus, self.memory_bytes - o.memory_bytes, self.gpus - o.gpus
        )

    def fits_in(self, free: Units) -> bool:
        return (
            self.millicpus <= free.millicpus
            and self.memory_bytes <= free.memory_bytes
            and self.gpus <= free.gpus
        )

    def as_resources(self) -> Resources:
        return Resources(self.millicpus / 1000, self.memory_bytes, self.gpus)


class Policy(StrEnum):
    PACK = "pack"  # fill the first host (in name order) before the next
    SPREAD = "spread"  # the host with the most free cpus first


@dataclass(frozen=True)
class HostView:
    name: str
    capacity: Units
    allocated: Units = Units()
    up: bool = True  # it takes runs: it answers, and its agent has room
    why: str = ""  # when it does not, why, for people ("is unreachable")

    @property
    def free(self) -> Units:
        return self.capacity - self.allocated


@dataclass(frozen=True)
class Pending:
    run_id: str
    request: Units
    priority: int = 0
    seq: int = 0  # submission order; lower first among equal priorities
    only: frozenset[str] | None = None  # the hosts it may go to (its placement); None: any
    policy: Policy | None = None  # None: place()'s
    avoid: frozenset[str] = frozenset()  # hosts it failed on: another that fits comes first


@dataclass(frozen=True)
class Placement:
    run_id: str
    host: str


@dataclass
class _Ledger:
    hosts: dict[str, HostView] = field(default_factory=dict)

    def take(self, name: str, u: Units) -> None:
        h = self.hosts[name]
        self.hosts[name] = HostView(h.name, h.capacity, h.allocated + u, h.up, h.why)


def queue_order(pending: Iterable[Pending]) -> list[Pending]:
    """Priority first (higher earlier), then submission order."""
    return sorted(pending, key=lambda p: (-p.priority, p.seq))


@functools.lru_cache(maxsize=4096)
def units_for(r: Resources) -> Units:
    """Units.of, remembered: a sweep's runs ask alike, and a placement pass asks for each."""
    return Units.of(r)


def place(
    pending: Iterable[Pending],
    hosts: Sequence[HostView],
    policy: Policy = Policy.PACK,
    holds: dict[str, str] | None = None,
    ordered: bool = False,
    requests: Iterable[Units] = (),
) -> list[Placement]:
    """Place as many queued runs as fit, in queue order.

    A run that does not fit now is skipped, and the runs behind it may still be placed
    (backfill), but not on the one host held for it: the host it may use that is closest to
    fitting it. Without that hold, small runs behind a big one would take every core that frees
    up and the big run would wait for as long as they keep coming, however high its priority.
    (Runs carry no expected duration, so a hold is strict: nothing behind may start there.)
    Runs that fit on no host even when it is empty are rejected before they get here, so a
    skipped run gets a host once enough of the running ones end.

    `holds` (run id -> host), when given, carries the holds from one pass to the next: a run
    keeps the host it held while it may still have it, so that the room gathering there is
    not given away as soon as another host has more for a moment. It is rewritten with this
    pass's holds. The price, without run durations to go by: should another host come to
    free up sooner, the run still waits for the one it holds (which only drains, so it fits
    there in the end).

    `ordered`: `pending` is in queue order already (it may then be a lazy iterable, and is read
    only as far as needed). `requests`: every distinct request among the pending runs: once no
    host that is not held can take any of them, the pass ends without reading the rest, so a
    long queue costs what the free room can take, not its length.
    """
    ledger = _Ledger({h.name: h for h in hosts if h.up})
    held: set[str] = set()  # hosts kept for a run ahead in the queue that did not fit
    now_held: dict[str, str] = {}
    placements: list[Placement] = []
    asks = frozenset(requests)

    def room_left() -> bool:
        return any(h.name not in held and any(r.fits_in(h.free) for r in asks)
                   for h in ledger.hosts.values())  # fmt: skip

    if asks and not room_left():
        return _kept(placements, holds, holds or {})  # nothing can start: holds stay as they are
    for p in pending if ordered else queue_order(pending):
        if asks and not room_left():
            now_held.update({k: v for k, v in (holds or {}).items() if k not in now_held})
            break
        usable = [
            h for h in ledger.hosts.values()
            if h.name not in held and (p.only is None or h.name in p.only)
        ]  # fmt: skip
        candidates = [h for h in usable if p.request.fits_in(h.free)]
        if not candidates:
            room = [h for h in usable if p.request.fits_in(h.capacity)]
            if room:
                before = (holds or {}).get(p.run_id)
                keep = [h for h in room if h.name == before]
                chosen = keep[0] if keep else min(room, key=lambda h: _shortfall(p.request, h))
                held.add(chosen.name)
                now_held[p.run_id] = chosen.name
            continue
        if p.avoid:  # a retry: on another host when one fits now
            candidates = [h for h in candidates if h.name not in p.avoid] or candidates
        if (p.policy or policy) is Policy.SPREAD:
            chosen = max(candidates, key=lambda h: (h.free.millicpus, h.free.memory_bytes))
        else:
            chosen = min(candidates, key=lambda h: h.name)
        ledger.take(chosen.name, p.request)
        placements.append(Placement(p.run_id, chosen.name))
    return _kept(placements, holds, now_held)


def _kept(
    placements: list[Placement], holds: dict[str, str] | None, now_held: dict[str, str]
) -> list[Placement]:
    if holds is not None and holds is not now_held:
        keep = dict(now_held)
        holds.clear()
        holds.update(keep)
    return placements


def _shortfall(need: Units, h: HostView) -> tuple[int, int, int, str]:
    """What `h` lacks to fit `need` now, scarcest resource first (then the name, so that the
    choice is the same at every pass)."""
    free = h.free
    return (
        max(0, need.gpus - free.gpus),
        max(0, need.millicpus - free.millicpus),
        max(0, need.memory_bytes - free.memory_bytes),
        h.name,
    )


def why_unplaceable(request: Units, hosts: Sequence[HostView]) -> str | None:
    """A message when no host could ever run this request, even empty; None when one could."""
    if any(request.fits_in(h.capacity) for h in hosts):
        return None
    if not hosts:
        return "no hosts are connected"
    biggest = max(hosts, key=lambda h: (h.capacity.millicpus, h.capacity.memory_bytes))
    need = request.as_resources()
    have = biggest.capacity.as_resources()
    return (
        f"a run asks for {need.cpus:g} cpus, {human_bytes(need.memory_bytes)} of memory and "
        f"{need.gpus} gpus; the largest host ({biggest.name}) offers {have.cpus:g} cpus, "
        f"{human_bytes(have.memory_bytes)} and {have.gpus} gpus"
    )


HOSTS_SAID = 5  # hosts named in a waiting reason; the others are counted


def why_waiting(
    request: Units, hosts: Sequence[HostView], only: frozenset[str] | None = None,
    held_for: Mapping[str, str] | None = None, run_id: str = "",
) -> str:  # fmt: skip
    """Why a queued run asking for `request` has no host, for people, host by host:
    "needs 4 cpus; local has 2 cpus free, h1 is held for des-3.07, h2 is unreachable".

    `hosts`: as the last placement pass left them (what is given out, which take no runs and
    why); `only`: the hosts the run may use (None: any); `held_for`: host -> the run ahead in
    the queue it is kept for (place()'s holds, turned round); `run_id`: the run asked about
    (a host held for it is its own, filling up for it). The hosts in name order, the first
    HOSTS_SAID of them named."""
    held_for = held_for or {}
    usable = sorted((h for h in hosts if only is None or h.name in only), key=lambda h: h.name)
    said: list[str] = []
    room: list[str] = []
    for h in usable:
        holder = held_for.get(h.name)
        if not h.up:
            said.append(f"{h.name} {h.why or 'takes no runs'}")
        elif not request.fits_in(h.capacity):
            said.append(f"{h.name} has {_amounts(h.capacity, request, h.capacity)} in all")
        elif holder is not None and holder != run_id:
            said.append(f"{h.name} is held for {holder}")
        elif not request.fits_in(h.free):
            mine = " (held for it as runs there end)" if holder == run_id else ""
            said.append(f"{h.name} has {_amounts(h.free, request, h.free)} free{mine}")
        else:
            room.append(h.name)
    need = f"needs {_amounts(request, request)}"
    if room:
        return (f"{need}; {', '.join(room[:HOSTS_SAID])} {'has' if len(room) == 1 else 'have'} "
                "room for it now: it is placed at the next pass, unless runs ahead of it "
                "take that room")  # fmt: skip
    if not usable:
        return f"{need}; no host it may use is known"
    more = len(said) - HOSTS_SAID
    text = f"{need}; " + ", ".join(said[:HOSTS_SAID]) + (f" and {more} more" if more > 0 else "")
    if only is not None and (out := sorted(h.name for h in hosts if h.name not in only)):
        named = ", ".join(out[:HOSTS_SAID]) + (f" and {len(out) - HOSTS_SAID} more"
                                              if len(out) > HOSTS_SAID else "")  # fmt: skip
        text += f"; its placement or network rules out {named}"
    return text


def _amounts(u: Units, asked: Units, short_of: Units | None = None) -> str:
    """ "2 cpus, 1.0GiB memory": `u` in the resources `asked` for (cpus always); with
    `short_of`, only those where it is less than asked."""
    have = u.as_resources()
    parts = []
    if short_of is None or asked.millicpus > short_of.millicpus:
        parts.append(f"{have.cpus:g} cpus")
    if asked.memory_bytes and (short_of is None or asked.memory_bytes > short_of.memory_bytes):
        parts.append(f"{human_bytes(have.memory_bytes)} memory")
    if asked.gpus and (short_of is None or asked.gpus > short_of.gpus):
        parts.append(f"{have.gpus} gpus")
    return ", ".join(parts) if parts else f"{have.cpus:g} cpus"
