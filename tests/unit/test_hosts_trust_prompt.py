"""`convoy hosts trust`'s two steps: the key offered is only said until the user checked it
(by --fingerprint, or yes at the prompt), then recorded by sending that fingerprint back;
nothing is recorded unchecked. No coordinator: `ask` stands for TrustHost."""

from __future__ import annotations

import asyncio
import io

import pytest

from convoy.cli.hosts import confirm_key
from convoy.client import KeyCheck
from convoy.errors import UsageError

OFFERED = "SHA256:" + "k" * 43


class _Host:
    """TrustHost as a coordinator answers it for a host offering OFFERED."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    async def ask(self, fingerprint: str | None) -> KeyCheck:
        self.asked.append(fingerprint)
        return KeyCheck(key_type="ssh-ed25519", fingerprint=OFFERED,
                        recorded=fingerprint == OFFERED, known_hosts="/h/known_hosts",
                        others=[("SHA256:old", "/h/known_hosts")])  # fmt: skip


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_with_the_fingerprint_it_is_recorded_in_one_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--fingerprint: one call carrying it, and the key it replaces is said."""
    host = _Host()
    assert asyncio.run(confirm_key("h1", OFFERED, host.ask)) == 0
    assert host.asked == [OFFERED]
    out = capsys.readouterr().out
    assert f"recorded h1's key {OFFERED} in /h/known_hosts" in out
    assert "it replaces the key recorded before: SHA256:old" in out


def test_without_a_terminal_the_key_is_only_said(monkeypatch: pytest.MonkeyPatch) -> None:
    """No --fingerprint and no terminal: status 2, the fingerprint shown, nothing recorded."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    host = _Host()
    with pytest.raises(UsageError, match=f"--fingerprint {OFFERED}"):
        asyncio.run(confirm_key("h1", None, host.ask))
    assert host.asked == [None]


@pytest.mark.parametrize(("answer", "status", "asked"), [("y\n", 0, [None, OFFERED]),
                                                         ("n\n", 1, [None])])  # fmt: skip
def test_at_the_prompt_a_yes_sends_the_fingerprint_back(
    monkeypatch: pytest.MonkeyPatch, answer: str, status: int, asked: list[str | None]
) -> None:
    """At a terminal: the first call records nothing; yes sends back the fingerprint shown,
    anything else records nothing (status 1)."""
    monkeypatch.setattr("sys.stdin", _Tty(answer))
    host = _Host()
    assert asyncio.run(confirm_key("h1", None, host.ask)) == status
    assert host.asked == asked
