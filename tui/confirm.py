"""A yes/no question before an action that cannot be taken back (cancelling runs).

The question names what the answer acts on, fixed when the key was pressed: rows that move
while it is asked change nothing. Only `y` says yes; `n`, Esc or a click outside say no.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static


class Confirm(ModalScreen[bool]):
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Static {
        width: auto; max-width: 90%; height: auto;
        padding: 1 2; border: thick $warning; background: $surface;
    }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{self.question}  y/n", markup=False)  # ids are text, not markup

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def on_click(self, event: events.Click) -> None:
        if event.widget is self:  # outside the question
            self.dismiss(False)
