"""Run output made safe for a terminal: what a run prints must not drive the user's terminal.

A run's bytes could set the window title, clear the screen, move the cursor over another run's
line or its `[run]` prefix, or reorder text with bidirectional overrides. On a terminal, `convoy
run` and `convoy watch` show each such character in a visible, inert form instead (ESC as
`^[`, so an escape sequence reads as text); a tab is kept. Written anywhere else (a file, a
pipe), and in output.log and `convoy logs`, the bytes stay as the run wrote them.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)  # ^[ for ESC, ^M for a carriage return
    if code == 0x7F:
        return "^?"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(text: str) -> str:
    """`text` with every character that could drive a terminal shown as text instead."""
    return _UNSAFE.sub(_shown, text)
