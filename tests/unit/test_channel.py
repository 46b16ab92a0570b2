"""convoy/client/channel.py: which targets are taken (never plaintext TCP), and how a
coordinator's certificate is pinned: recorded at first contact, refused when it changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from convoy.certs import fingerprint, self_signed
from convoy.client import channel
from convoy.client.channel import (
    Target,
    known_path,
    parse_target,
    pinned_certificate,
    resolve_fingerprint,
    resolve_target,
    resolve_token,
    tls_options,
)
from convoy.errors import UntrustedCoordinator, UsageError


def test_no_target_is_this_homes_socket_and_unix_names_another(tmp_path: Path) -> None:
    assert parse_target(None, tmp_path) == Target(socket=tmp_path / "coordinator.sock")
    assert parse_target("", tmp_path) == Target(socket=tmp_path / "coordinator.sock")
    assert parse_target("unix:/run/c.sock", tmp_path) == Target(socket=Path("/run/c.sock"))


def test_grpcs_targets_are_host_and_port(tmp_path: Path) -> None:
    assert parse_target("grpcs://Coord.example:7443", tmp_path) == Target(
        host="coord.example", port=7443
    )
    v6 = parse_target("grpcs://[::1]:7443/", tmp_path)
    assert (v6.host, v6.port, v6.hostport, str(v6)) == ("::1", 7443, "[::1]:7443",
                                                         "grpcs://[::1]:7443")  # fmt: skip


@pytest.mark.parametrize("text", ["grpc://h:7443", "h:7443", "10.0.0.1:7443", "http://h:1"])
def test_plaintext_targets_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(UsageError, match="plaintext is refused; use grpcs://"):
        parse_target(text, tmp_path)


@pytest.mark.parametrize("text", ["grpcs://h", "grpcs://h:0", "https://h:1", "unix:", "h"])
def test_other_targets_say_what_is_expected(tmp_path: Path, text: str) -> None:
    with pytest.raises(UsageError, match=r"expected grpcs://HOST:PORT|needs a socket path"):
        parse_target(text, tmp_path)


def test_the_environment_gives_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVOY_COORDINATOR", "grpcs://c:1")
    monkeypatch.setenv("CONVOY_TOKEN", "convoy_t")
    monkeypatch.setenv("CONVOY_COORDINATOR_FINGERPRINT", "SHA256:" + "AB" * 32)
    assert (resolve_target(None), resolve_target(""), resolve_target("unix:/s")) == (
        "grpcs://c:1", "", "unix:/s",
    )  # fmt: skip
    assert resolve_token() == "convoy_t"
    assert resolve_fingerprint() == "ab" * 32
    monkeypatch.delenv("CONVOY_TOKEN")
    monkeypatch.delenv("CONVOY_COORDINATOR_FINGERPRINT")
    assert (resolve_token(), resolve_fingerprint()) == (None, None)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What the (pretend) coordinator presents: the last certificate of the list."""
    certs = [self_signed(["coord.example"])[0]]
    monkeypatch.setattr(channel, "fetch_certificate", lambda host, port, timeout: certs[-1])
    return certs


TARGET = Target(host="coord.example", port=7443)


def test_first_contact_records_the_fingerprint_and_says_so(
    tmp_path: Path, served: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    assert pinned_certificate(TARGET, tmp_path) == served[0]
    fp = fingerprint(served[0])
    assert known_path(tmp_path).read_text() == f"coord.example:7443 {fp}\n"
    said = capsys.readouterr().err
    assert f"trusting coordinator coord.example:7443, certificate SHA256:{fp}" in said
    assert "first contact" in said and str(known_path(tmp_path)) in said
    assert pinned_certificate(TARGET, tmp_path) == served[0]  # later: checked, silent
    assert capsys.readouterr().err == ""
    assert known_path(tmp_path).read_text().count("\n") == 1


def test_a_changed_certificate_is_refused_saying_which_line_to_remove(
    tmp_path: Path, served: list[bytes]
) -> None:
    pinned_certificate(TARGET, tmp_path)
    served.append(self_signed(["coord.example"])[0])  # the same names, another key
    with pytest.raises(UntrustedCoordinator, match="CHANGED") as e:
        pinned_certificate(TARGET, tmp_path)
    assert "delete the line of coord.example:7443" in str(e.value)
    assert str(known_path(tmp_path)) in str(e.value)
    assert fingerprint(served[1]) not in known_path(tmp_path).read_text()


def test_an_expected_fingerprint_is_checked_instead_and_nothing_recorded(
    tmp_path: Path, served: list[bytes]
) -> None:
    with pytest.raises(UntrustedCoordinator, match="not the expected"):
        pinned_certificate(TARGET, tmp_path, expected="00" * 32)
    assert pinned_certificate(TARGET, tmp_path, expected=fingerprint(served[0])) == served[0]
    assert not known_path(tmp_path).exists()


def test_the_name_checked_is_one_the_pinned_certificate_has(served: list[bytes]) -> None:
    assert ("grpc.ssl_target_name_override", "coord.example") in tls_options(
        Target(host="10.1.2.3", port=1), served[0]
    )
    assert not [o for o, _ in tls_options(TARGET, served[0]) if "override" in o]
    assert ("grpc.max_receive_message_length", 64 * 1024 * 1024) in tls_options(TARGET, served[0])


def test_a_port_without_tls_or_without_anyone_is_said_plainly(tmp_path: Path) -> None:
    import asyncio
    import socket

    import grpc

    from convoy.client.channel import open_channel
    from convoy.errors import CoordinatorUnavailable

    async def main() -> None:
        plain = grpc.aio.server()
        port = plain.add_insecure_port("127.0.0.1:0")
        await plain.start()
        try:
            with pytest.raises(CoordinatorUnavailable, match="does not speak TLS"):
                await open_channel(f"grpcs://127.0.0.1:{port}", tmp_path, "convoy_t")
        finally:
            await plain.stop(None)
        with socket.socket() as s:  # a port no one listens on (bound, not listening)
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
            with pytest.raises(CoordinatorUnavailable, match="cannot reach a coordinator"):
                await open_channel(f"grpcs://127.0.0.1:{closed}", tmp_path, "convoy_t")
        assert not (tmp_path / "known_coordinators").exists()

    asyncio.run(main())
