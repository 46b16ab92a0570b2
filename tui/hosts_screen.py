"""The allocations screen: each host's cpus, memory (and gpus) allocated against capacity, the
runs holding them, and the host's state; refreshed every second."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from .commands import KeyCommands
from .model import bar

if TYPE_CHECKING:
    from .app import ConvoyApp

GIB = 1024**3


REASON_MAX = 160  # characters of a reason on a card


def one_line(reason: str) -> str:
    """A reason's first line, at most REASON_MAX characters, "…" where some was left out: an
    agent that failed to start brings the end of its log along (`convoy hosts` prints it
    all), and a card is no place for thirty lines of it."""
    lines = [ln.strip() for ln in reason.splitlines() if ln.strip()]
    if not lines:
        return ""
    first = lines[0]
    if len(first) > REASON_MAX:
        return first[: REASON_MAX - 1] + "…"
    return f"{first} …" if len(lines) > 1 else first


def host_text(h: Any) -> str:
    """A host's card: state, a bar per resource, the runs holding them. Why it is not up, or
    takes no runs (a full disk), in one line; nothing of the kind for a host that is up and
    takes runs, whatever reason came with it."""
    cap, used = h.capacity, h.allocated
    full = h.state == "up" and not h.accepting
    why = one_line(h.reason) if h.state != "up" or full else ""
    state = "up (full)" if full else h.state
    lines = [f"[b]{escape(h.name)}[/b]  {escape(h.address)}  {escape(state)}"
             + (f"  ({escape(why)})" if why else "")]  # fmt: skip

    def line(label: str, u: float, c: float, unit: str) -> str:
        pct = 100 * u / c if c else 0.0
        return f"  {label:7} {bar(pct, 30)} {u:g}/{c:g}{unit}"

    lines.append(line("cpus", used.cpus, cap.cpus, ""))
    lines.append(line("memory", round(used.memory_bytes / GIB, 2),
                      round(cap.memory_bytes / GIB, 2), " GiB"))  # fmt: skip
    if cap.gpus:
        lines.append(line("gpus", used.gpus, cap.gpus, ""))
    if h.labels:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(h.labels.items()))
        lines.append(f"  labels  {escape(labels)}")
    runs = list(h.runs)
    lines.append(f"  runs    {' '.join(runs[:12])}" + (f" (+{len(runs) - 12})" if len(runs) > 12
                                                        else "" if runs else "none"))  # fmt: skip
    return "\n".join(lines)


class HostsScreen(Screen[None]):
    COMMANDS = {KeyCommands}  # its keys in the command palette too
    BINDINGS = [
        Binding("r", "app.switch_mode('runs')", "Runs"),
        Binding("escape", "app.switch_mode('runs')", "Runs", show=False),
        Binding("l", "app.switch_mode('logs')", "Logs"),
    ]

    @property
    def convoy(self) -> ConvoyApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="status")
        yield VerticalScroll(id="hosts")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def on_screen_resume(self) -> None:
        self.refresh_hosts()  # first shown, or shown again: up to date at once

    def _tick(self) -> None:
        if self.is_current:  # a mode left stays mounted: no Hosts call while it is hidden
            self.refresh_hosts()

    @work(exclusive=True, group="hosts", exit_on_error=False)
    async def refresh_hosts(self) -> None:
        self.query_one("#status", Static).update(self.convoy.status_line())
        try:
            hosts = await self.convoy.client.hosts()
        except Exception:
            return  # the app's connection worker reports the coordinator's absence
        box = self.query_one("#hosts", VerticalScroll)
        cards = {c.id: c for c in box.query(Static)}
        current = {"host-" + re.sub(r"[^A-Za-z0-9_-]", "_", h.name): h for h in hosts}
        for card_id, card in cards.items():
            if card_id not in current:
                await card.remove()  # a host that left the hosts file
        for card_id, h in current.items():
            text = host_text(h)
            if card_id in cards:
                cards[card_id].update(text)
            else:
                await box.mount(Static(text, id=card_id, classes="host"))
