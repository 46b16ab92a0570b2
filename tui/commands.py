"""convoy's keys as commands of the command palette (ctrl+p).

Textual's palette offers its own commands (theme, keys, quit, screenshot); a screen's keys were
found only in its footer or the "Keys" panel. This provider offers every key that the screen
the palette was opened on and the app bind, by its description, with the key and what it does
as its help; choosing one does what the key does (cancelling still asks first). Taken from the
BINDINGS themselves, the palette cannot drift from the keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

OWN = {"quit"}  # Textual's own commands already offer these


class KeyCommands(Provider):
    def _commands(self) -> Iterator[tuple[str, str, Callable[[], Any]]]:
        """(title, help, what to run) for each action bound on the screen or the app; an
        action bound twice (`a` and `3`, say) once, with both keys."""
        app, screen = self.app, self.screen
        found: dict[str, tuple[Binding, DOMNode, list[str]]] = {}
        for node in (screen, app):
            for binding in type(node).BINDINGS:
                if not isinstance(binding, Binding) or not binding.description:
                    continue
                action = binding.action
                if action.removeprefix("app.") in OWN:
                    continue
                where = "app" if node is app or action.startswith("app.") else "screen"
                name = f"{where}:{action.removeprefix('app.')}"
                if name not in found:
                    found[name] = (binding, node, [])
                found[name][2].append(app.get_key_display(binding))
        for binding, target, keys in found.values():
            title = binding.description
            if binding.action.removeprefix("app.").startswith("switch_mode("):
                title = f"Go to {title}"  # the screen, not the run's action ("Logs": Enter)
            what = f"{binding.tooltip} " if binding.tooltip else ""
            help_text = f"{what}(key {' or '.join(keys)})"
            yield title, help_text, partial(app.run_action, binding.action, target)

    async def discover(self) -> Hits:
        for title, help_text, run in self._commands():
            yield DiscoveryHit(title, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, run in self._commands():
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), run, help=help_text)
