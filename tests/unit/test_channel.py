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


# -- which certificate is trusted how: self-signed pinned as its own root, CA-issued verified --


@pytest.fixture
def ca_issued() -> tuple[bytes, bytes]:
    """A leaf for coord.example issued by an intermediate of a test root: (leaf, root) PEM."""
    from tests.testca import root

    top = root()
    leaf = top.issue("convoy test intermediate", ca=True).issue("coord", ["coord.example"])
    return leaf.pem, top.pem


def test_self_signed_is_a_certificate_that_is_its_own_issuer(
    ca_issued: tuple[bytes, bytes],
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from convoy.certs import is_self_signed

    leaf, top = ca_issued
    served_pem = self_signed(["coord.example"])[0]
    assert is_self_signed(served_pem)
    assert is_self_signed(top)  # a root is, too (it is never what a coordinator serves)
    assert not is_self_signed(leaf)
    assert not is_self_signed(leaf + top)  # a chain: its first certificate counts
    # Named its own issuer but signed by another key: not self-signed.
    made = x509.load_pem_x509_certificate(served_pem)
    forged = (
        x509.CertificateBuilder().subject_name(made.subject).issuer_name(made.subject)
        .public_key(made.public_key()).serial_number(1)
        .not_valid_before(made.not_valid_before_utc).not_valid_after(made.not_valid_after_utc)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )  # fmt: skip
    assert not is_self_signed(forged.public_bytes(serialization.Encoding.PEM))


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes | None, str]]:
    """The chain checks trusted() makes (roots, as said to users), passing; the machine's
    roots stand in as b"SYSTEM"."""
    done: list[tuple[bytes | None, str]] = []
    monkeypatch.setattr(
        channel,
        "chain_check",
        lambda target, pem, roots, source, timeout: done.append((roots, source)),
    )
    monkeypatch.setattr(channel, "system_roots", lambda: b"SYSTEM")
    return done


def test_a_self_signed_certificate_is_its_own_only_root_whatever_ca_is_given(
    tmp_path: Path, served: list[bytes], checks: list[tuple[bytes | None, str]],
    ca_issued: tuple[bytes, bytes],
) -> None:  # fmt: skip
    from convoy.client.channel import credentials, trusted

    assert trusted(TARGET, tmp_path) == (served[0], served[0])
    assert trusted(TARGET, tmp_path, ca=ca_issued[1]) == (served[0], served[0])
    assert checks == []  # no CA is asked: the pin and the handshake are the whole check
    options = dict(tls_options(Target(host="10.1.2.3", port=1), served[0]))
    assert options["grpc.ssl_target_name_override"] == "coord.example"
    assert credentials(served[0], "convoy_t") is not None


def test_a_ca_issued_certificate_is_verified_up_to_the_ca_given_else_the_machines_roots(
    tmp_path: Path, served: list[bytes], checks: list[tuple[bytes | None, str]],
    ca_issued: tuple[bytes, bytes],
) -> None:  # fmt: skip
    from convoy.client.channel import trusted

    leaf, top = ca_issued
    served.append(leaf)
    assert trusted(TARGET, tmp_path, ca=top) == (leaf, top)
    assert checks[-1] == (top, "the CA bundle given (CONVOY_COORDINATOR_CA)")
    assert trusted(TARGET, tmp_path) == (leaf, b"SYSTEM")
    assert checks[-1] == (b"SYSTEM", "this machine's CA roots")
    # Pinned all the same: the leaf's fingerprint, recorded at first contact.
    assert known_path(tmp_path).read_text() == f"coord.example:7443 {fingerprint(leaf)}\n"
    # No name override: the name connected to must be the certificate's, as in any TLS.
    for host in ("10.1.2.3", "coord.example"):
        assert not [o for o, _ in tls_options(Target(host=host, port=1), leaf) if "override" in o]


def test_a_renewed_ca_certificate_is_refused_as_a_changed_one(
    tmp_path: Path, served: list[bytes], checks: list[tuple[bytes | None, str]],
    ca_issued: tuple[bytes, bytes],
) -> None:  # fmt: skip
    from convoy.client.channel import trusted
    from tests.testca import root

    served.append(ca_issued[0])
    trusted(TARGET, tmp_path, ca=ca_issued[1])
    served.append(root().issue("coord", ["coord.example"]).pem)
    with pytest.raises(UntrustedCoordinator, match="CHANGED") as e:
        trusted(TARGET, tmp_path, ca=ca_issued[1])
    assert "changes at each renewal" in str(e.value)


def test_a_ca_certificate_that_does_not_verify_is_not_pinned(
    tmp_path: Path, served: list[bytes], monkeypatch: pytest.MonkeyPatch,
    ca_issued: tuple[bytes, bytes],
) -> None:  # fmt: skip
    from convoy.client.channel import trusted

    def refuse(target: Target, pem: bytes, roots: bytes | None, source: str, t: float) -> None:
        raise UntrustedCoordinator("does not verify")

    monkeypatch.setattr(channel, "chain_check", refuse)
    served.append(ca_issued[0])
    with pytest.raises(UntrustedCoordinator, match="does not verify"):
        trusted(TARGET, tmp_path)
    assert not known_path(tmp_path).exists()


def test_the_ca_bundle_is_the_file_given_or_convoy_coordinator_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ca_issued: tuple[bytes, bytes]
) -> None:
    from convoy.client.channel import resolve_ca

    (tmp_path / "ca.pem").write_bytes(ca_issued[1])
    (tmp_path / "other.pem").write_bytes(ca_issued[0])
    monkeypatch.delenv("CONVOY_COORDINATOR_CA", raising=False)
    assert resolve_ca() is None
    monkeypatch.setenv("CONVOY_COORDINATOR_CA", str(tmp_path / "ca.pem"))
    assert resolve_ca() == ca_issued[1]
    assert resolve_ca(tmp_path / "other.pem") == ca_issued[0]  # the argument comes first
    (tmp_path / "junk").write_text("not PEM")
    with pytest.raises(UsageError, match="junk: not a PEM certificate"):
        resolve_ca(str(tmp_path / "junk"))
    with pytest.raises(UsageError, match=r"none\.pem: No such file"):
        resolve_ca(str(tmp_path / "none.pem"))


def test_the_chain_check_says_why_a_ca_certificate_does_not_verify(tmp_path: Path) -> None:
    """chain_check against a TLS server in a thread serving leaf + intermediate: the right CA
    and a name of the certificate pass; another name, or no CA, are refused saying why."""
    import contextlib
    import socket
    import ssl
    import threading

    from convoy.client.channel import chain_check
    from tests.testca import root

    top = root()
    middle = top.issue("intermediate", ca=True)
    leaf = middle.issue("coordinator", ["localhost"])
    (tmp_path / "chain.pem").write_bytes(leaf.pem + middle.pem)
    (tmp_path / "key.pem").write_bytes(leaf.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with conn, contextlib.suppress(OSError):
                ctx.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        chain_check(Target(host="localhost", port=port), leaf.pem, top.pem, "the CA given")
        with pytest.raises(UntrustedCoordinator, match=r"not valid for '127\.0\.0\.1'") as e:
            chain_check(Target(host="127.0.0.1", port=port), leaf.pem, top.pem, "the CA given")
        assert "is not for the name connected to" in str(e.value)
        assert "connect with a name it is for: localhost" in str(e.value)
        with pytest.raises(UntrustedCoordinator, match="unable to get local issuer") as e:
            chain_check(Target(host="localhost", port=port), leaf.pem, None, "the machine's")
        assert "does not verify against the machine's" in str(e.value)
        assert "CONVOY_COORDINATOR_CA" in str(e.value)
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (a close alone does not)
        listener.close()
        thread.join()
