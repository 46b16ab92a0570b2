"""What a run prints cannot drive the terminal `convoy run` and `convoy watch` print it to."""

from __future__ import annotations

import io

from convoy.cli.run import Printer
from convoy.cli.safetext import inert

HOSTILE = (
    b"\x1b]0;pwned title\x07"  # set the window title
    b"\x1b[2J\x1b[H"  # clear the screen, cursor home
    b"progress 10%\rprogress 99%"  # a carriage return overwrites the line (and its prefix)
    b"\xc2\x9b31m"  # a C1 CSI (U+009B)
    b" \xe2\x80\xaeevil\ttab\n"  # a right-to-left override; a tab is fine
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_every_control_character_is_shown_as_text() -> None:
    out, err = Terminal(), Terminal()
    p = Printer(out, quiet=False, err=err)
    p.output("exp-1.0", HOSTILE)
    p.status("convoy: exp-1.0 failed: \x1b[31mred\x1b[0m said the host")
    shown = out.getvalue()
    assert shown == (
        "[exp-1.0] ^[]0;pwned title^G^[[2J^[[Hprogress 10%^Mprogress 99%\\x9b31m \\u202eevil\ttab\n"
    )
    assert not any(ord(c) < 0x20 and c not in "\t\n" for c in shown + err.getvalue())
    assert err.getvalue() == "convoy: exp-1.0 failed: ^[[31mred^[[0m said the host\n"


def test_to_a_file_or_pipe_the_bytes_stay_as_the_run_wrote_them() -> None:
    out, err = io.StringIO(), io.StringIO()
    p = Printer(out, quiet=False, err=err)
    p.output("exp-1.0", HOSTILE)
    assert out.getvalue() == "[exp-1.0] " + HOSTILE.decode(errors="replace")


def test_a_partial_last_line_is_made_inert_too() -> None:
    out = Terminal()
    p = Printer(out, quiet=False, err=Terminal())
    p.output("r", b"done\x1b[K")
    p.flush("r")
    assert out.getvalue() == "[r] done^[[K\n"


def test_plain_text_is_unchanged() -> None:
    text = "ns-3 says: 42 packets, loss 0.5%\tok — ünïcode ✓"
    assert inert(text) == text
