"""The coordinator's TLS certificate: made once, private, reused; fingerprints spelt one way."""

from __future__ import annotations

import hashlib
import os
import ssl
import stat
from pathlib import Path

import pytest

from convoy.certs import fingerprint, names_in, normal_fingerprint, self_signed
from convoy.coordinator.tls import identity, parse_listen
from convoy.errors import UsageError


def test_a_certificate_is_made_on_first_use_and_reused_after(tmp_path: Path) -> None:
    first = identity(tmp_path, "127.0.0.1", None, None)
    assert first.made
    assert stat.S_IMODE(os.stat(tmp_path / "tls" / "key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "tls").st_mode) == 0o700
    again = identity(tmp_path, "127.0.0.1", None, None)
    assert not again.made
    assert (again.cert_pem, again.fingerprint) == (first.cert_pem, first.fingerprint)


def test_the_certificate_names_the_listen_host_and_localhost(tmp_path: Path) -> None:
    names = names_in(identity(tmp_path, "coord.example.org", None, None).cert_pem)
    assert {"coord.example.org", "localhost", "127.0.0.1"} <= set(names)


def test_the_fingerprint_is_the_sha256_of_the_der(tmp_path: Path) -> None:
    cert, _ = self_signed(["localhost"])
    der = ssl.PEM_cert_to_DER_cert(cert.decode())
    assert fingerprint(cert) == hashlib.sha256(der).hexdigest()


def test_the_users_own_certificate_and_key_are_served_as_given(tmp_path: Path) -> None:
    cert, key = self_signed(["example"])
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    own = identity(tmp_path, "0.0.0.0", tmp_path / "c.pem", tmp_path / "k.pem")
    assert (own.cert_pem, own.key_pem, own.made) == (cert, key, False)
    assert not (tmp_path / "tls").exists()


def test_a_cert_without_its_key_or_a_file_that_is_none_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a certificate")
    with pytest.raises(UsageError, match="go together"):
        identity(tmp_path, "h", tmp_path / "c.pem", None)
    with pytest.raises(UsageError, match="not a PEM certificate"):
        identity(tmp_path, "h", tmp_path / "c.pem", tmp_path / "c.pem")
    with pytest.raises(UsageError, match="No such file"):
        identity(tmp_path, "h", tmp_path / "none.pem", tmp_path / "c.pem")


def test_fingerprints_are_taken_as_users_paste_them() -> None:
    hexed = "ab" * 32
    assert normal_fingerprint(hexed.upper()) == hexed
    assert normal_fingerprint("SHA256:" + ":".join(["AB"] * 32)) == hexed
    with pytest.raises(UsageError, match="not a SHA-256"):
        normal_fingerprint("abc")


def test_listen_addresses_are_host_and_port() -> None:
    assert parse_listen("0.0.0.0:7443") == ("0.0.0.0", 7443)
    assert parse_listen("[::1]:7443") == ("::1", 7443)
    for bad in ("7443", "host:", ":7443", "host:99999", "host:x"):
        with pytest.raises(UsageError, match="HOST:PORT"):
            parse_listen(bad)


def test_a_chain_file_is_served_whole_and_named_by_its_leaf(tmp_path: Path) -> None:
    """A CA-issued --cert file holds the leaf then its intermediates: grpc serves it all (a
    client knows only the root), and the fingerprint users pin is the leaf's."""
    from tests.testca import root

    middle = root().issue("intermediate", ca=True)
    leaf = middle.issue("coordinator", ["coord.example.org"])
    (tmp_path / "chain.pem").write_bytes(leaf.pem + middle.pem)
    (tmp_path / "k.pem").write_bytes(leaf.key_pem)
    own = identity(tmp_path, "0.0.0.0", tmp_path / "chain.pem", tmp_path / "k.pem")
    assert own.cert_pem == leaf.pem + middle.pem
    assert own.fingerprint == fingerprint(leaf.pem) != fingerprint(middle.pem)
