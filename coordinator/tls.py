"""The coordinator's TLS identity for `convoy up --listen`: the admin's own certificate and
key (--cert/--key), or one made on first use and kept in CONVOY_HOME/tls for every start
after, so that the fingerprint users pinned stays true.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from convoy.certs import fingerprint, self_signed
from convoy.errors import UsageError
from convoy.paths import open_state

TLS_DIR = "tls"


@dataclass(frozen=True)
class Identity:
    cert_pem: bytes  # the chain the server presents
    key_pem: bytes
    cert_path: Path
    made: bool  # made just now (users have not pinned it yet)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert_pem)


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) for --listen; a UsageError otherwise."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 0.0.0.0:7443")
    return host, int(port)


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def names_for(host: str) -> list[str]:
    """What a made certificate is for: the listen host (or, for a wildcard address, this
    machine's names), and localhost."""
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    names = [socket.gethostname(), socket.getfqdn()] if wildcard else [host]
    return [*names, "localhost", "127.0.0.1", "::1"]


def identity(home: Path, host: str, cert: Path | None, key: Path | None) -> Identity:
    """The certificate and key to serve TLS with (see the module docstring)."""
    if (cert is None) != (key is None):
        raise UsageError("--cert and --key go together: the certificate and its private key")
    if cert is not None and key is not None:
        try:
            own = Identity(cert.read_bytes(), key.read_bytes(), cert, made=False)
        except OSError as e:
            raise UsageError(f"{e.filename}: {e.strerror}") from None
        own.fingerprint  # noqa: B018 - refuses a file that holds no PEM certificate, now
        return own
    folder = home / TLS_DIR
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.exists() and key_path.exists():
        return Identity(cert_path.read_bytes(), key_path.read_bytes(), cert_path, made=False)
    folder.mkdir(mode=0o700, exist_ok=True)
    cert_pem, key_pem = self_signed(names_for(host))
    with open_state(key_path, "wb") as f:  # 0600, and no link followed
        f.write(key_pem)
    with open_state(cert_path, "wb") as f:  # the key first: a certificate means both are there
        f.write(cert_pem)
    os.chmod(folder, 0o700)
    return Identity(cert_pem, key_pem, cert_path, made=True)
