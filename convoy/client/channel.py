"""A gRPC channel to a coordinator: its unix socket on this machine, or TLS over TCP.

Targets: "" (or None) is the socket under CONVOY_HOME, `unix:PATH` another socket,
`grpcs://HOST:PORT` a coordinator started with `convoy up --listen`. Plaintext TCP is refused
on both sides: a token sent in the clear is a token given away.

Trust is pinned, as ssh pins host keys. The first contact with HOST:PORT records its
certificate's SHA-256 fingerprint in CONVOY_HOME/known_coordinators (unless the user gave the
fingerprint up front: CONVOY_COORDINATOR_FINGERPRINT, as `convoy up --listen` logs it); every
later contact compares and refuses a changed certificate. What the channel then verifies
depends on the certificate:

- self-signed (the default, made by `convoy up`): the channel trusts exactly that certificate
  as its only root, so it verifies and nothing else does, whatever name it is for: the
  certificate fetched to compare is only a candidate, and grpc's own handshake proves the
  server holds its key;
- issued by a CA (`convoy up --cert`): the chain is verified as any TLS client does, up to
  the CA bundle the user gives (CONVOY_COORDINATOR_CA, or `ca`) or else this machine's roots,
  and the host name connected to must be one the certificate is for. The pin is checked too,
  so a renewed certificate is refused until the user accepts its new fingerprint.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc

from convoy.certs import der_of, is_self_signed, names_in, normal_fingerprint
from convoy.certs import fingerprint as fingerprint_of
from convoy.errors import CoordinatorUnavailable, UntrustedCoordinator, UsageError
from convoy.paths import checked_home, coordinator_socket, open_state

MAX_RECEIVE = 64 * 1024 * 1024  # a Results chunk holds 1,000 rows: past gRPC's 4 MiB default
KNOWN_FILE = "known_coordinators"
_TCP = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:/\[\]]+)):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class Target:
    """Where a coordinator is: a unix socket path, or a TLS host and port."""

    socket: Path | None = None
    host: str = ""
    port: int = 0

    @property
    def remote(self) -> bool:
        return self.socket is None

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"unix:{self.socket}" if self.socket is not None else f"grpcs://{self.hostport}"


def resolve_target(arg: str | None) -> str:
    """The target to use: `arg` when given (even ""), else $CONVOY_COORDINATOR, else ""."""
    return arg if arg is not None else os.environ.get("CONVOY_COORDINATOR", "")


def resolve_token() -> str | None:
    """$CONVOY_TOKEN, or None. Never a command-line option: those show in `ps`."""
    return os.environ.get("CONVOY_TOKEN") or None


def resolve_fingerprint(arg: str | None = None) -> str | None:
    """`arg`, else $CONVOY_COORDINATOR_FINGERPRINT, in normal spelling; None for neither."""
    given = arg if arg is not None else os.environ.get("CONVOY_COORDINATOR_FINGERPRINT")
    return normal_fingerprint(given) if given else None


def resolve_ca(arg: str | os.PathLike[str] | None = None) -> bytes | None:
    """The CA bundle (PEM) to verify a CA-issued coordinator certificate with: the file `arg`
    names, else the one $CONVOY_COORDINATOR_CA names; None for neither (this machine's roots).
    A UsageError for a file that cannot be read or holds no PEM certificate."""
    given = arg if arg is not None else os.environ.get("CONVOY_COORDINATOR_CA") or None
    if given is None:
        return None
    try:
        pem = Path(given).expanduser().read_bytes()
    except OSError as e:
        raise UsageError(f"CA bundle {given}: {e.strerror}") from None
    try:
        der_of(pem)
    except UsageError:
        raise UsageError(f"CA bundle {given}: not a PEM certificate (no BEGIN CERTIFICATE "
                         "line)") from None  # fmt: skip
    return pem


def system_roots() -> bytes | None:
    """This machine's CA bundle, where OpenSSL looks for it ($SSL_CERT_FILE, else the
    system's file); None when there is none, and grpc uses its own default roots."""
    cafile = ssl.get_default_verify_paths().cafile
    try:
        return Path(cafile).read_bytes() if cafile else None
    except OSError:
        return None


def parse_target(text: str | None, home: Path) -> Target:
    """A target as written (see the module docstring); a UsageError for anything else."""
    if not text:
        return Target(socket=coordinator_socket(home))
    if text.startswith("unix:"):
        path = text[len("unix:") :].removeprefix("//")
        if not path:
            raise UsageError(f"coordinator {text!r}: unix: needs a socket path")
        return Target(socket=Path(path).expanduser())
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    if scheme in ("grpc", "http", "") and _TCP.fullmatch(rest.rstrip("/")):
        raise UsageError(
            f"coordinator {text!r}: plaintext is refused; use grpcs://{rest.rstrip('/')}"
        )
    m = _TCP.fullmatch(rest.rstrip("/"))
    if scheme != "grpcs" or m is None or not 0 < int(m["port"]) < 65536:
        raise UsageError(
            f"coordinator {text!r}: expected grpcs://HOST:PORT, unix:PATH, or nothing (this "
            "machine's coordinator)"
        )
    return Target(host=(m["v6"] or m["host"]).lower(), port=int(m["port"]))


def fetch_certificate(host: str, port: int, timeout: float = 5.0) -> bytes:
    """The certificate HOST:PORT presents (PEM), not verified: pinning is what trusts it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])  # as grpc speaks: a grpc server may want it
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLError as e:
        raise CoordinatorUnavailable(
            f"{host}:{port} does not speak TLS as a coordinator with --listen does ({e.reason})"
        ) from None
    except OSError as e:
        raise CoordinatorUnavailable(f"cannot reach a coordinator at {host}:{port}: {e}") from None
    if not der:
        raise CoordinatorUnavailable(f"{host}:{port} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der).encode()


def known_path(home: Path) -> Path:
    return home / KNOWN_FILE


def known_fingerprint(home: Path, hostport: str) -> str | None:
    """The fingerprint recorded for HOST:PORT, or None."""
    try:
        lines = known_path(home).read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        words = line.split()
        if len(words) >= 2 and not line.startswith("#") and words[0] == hostport:
            return words[1]
    return None


def pinned_certificate(
    target: Target, home: Path, expected: str | None = None, timeout: float = 5.0
) -> bytes:
    """The certificate of `target` (PEM), once it matches `expected` (a fingerprint) or, with
    none expected, the one known_coordinators records, recording it at first contact."""
    return pin(target, home, fetch_certificate(target.host, target.port, timeout), expected)


def pin(target: Target, home: Path, pem: bytes, expected: str | None = None) -> bytes:
    """`pem`, the certificate `target` presented, once it matches `expected` or the pin of
    known_coordinators (recorded at first contact); UntrustedCoordinator otherwise."""
    got = fingerprint_of(pem)
    if expected is not None:
        if got != expected:
            raise UntrustedCoordinator(
                f"coordinator {target.hostport} presented certificate SHA256:{got}, not the "
                f"expected SHA256:{expected} (CONVOY_COORDINATOR_FINGERPRINT); refusing to "
                "connect: ask its admin which is right"
            )
        return pem
    known = known_fingerprint(home, target.hostport)
    if known is None:
        checked_home(home)
        with open_state(known_path(home)) as f:
            f.write(f"{target.hostport} {got}\n".encode())
        print(f"convoy: trusting coordinator {target.hostport}, certificate SHA256:{got} "
              f"(first contact; recorded in {known_path(home)})", file=sys.stderr)  # fmt: skip
    elif known != got:
        raise UntrustedCoordinator(
            f"the certificate of coordinator {target.hostport} CHANGED: it was SHA256:{known}, "
            f"it is now SHA256:{got}. Someone may be in between, or the coordinator made a "
            "new certificate (a CA-issued one changes at each renewal); refusing to connect. "
            "Ask its admin for the fingerprint `convoy up` logs; if it is the new one, delete "
            f"the line of {target.hostport} in {known_path(home)} and connect again"
        )
    return pem


NAME_MISMATCH = (62, 64)  # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH


def chain_check(
    target: Target, pem: bytes, roots: bytes | None, source: str = "this machine's CA roots",
    timeout: float = 5.0,
) -> None:  # fmt: skip
    """Verify the chain `target` presents (its leaf `pem`) up to `roots` (None: this machine's
    default; said to users as `source`), and that it is for the host name connected to, as
    the channel will: UntrustedCoordinator saying why, at once, rather than a channel never
    ready."""
    ctx = ssl.create_default_context(cadata=roots.decode("ascii", "replace")) if roots else (
        ssl.create_default_context()
    )  # fmt: skip
    ctx.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=target.host),
        ):
            pass
    except ssl.SSLCertVerificationError as e:
        if e.verify_code in NAME_MISMATCH:
            raise UntrustedCoordinator(
                f"the certificate of coordinator {target.hostport} is not for the name "
                f"connected to ({e.verify_message}); refusing to connect: connect with a name "
                f"it is for: {', '.join(names_in(pem))}"
            ) from None
        raise UntrustedCoordinator(
            f"the certificate of coordinator {target.hostport} is issued by a CA and does not "
            f"verify against {source}: {e.verify_message}; refusing to connect. If its CA is "
            "your organisation's own (or a test one), set CONVOY_COORDINATOR_CA to a file of "
            "its certificate (PEM)"
        ) from None
    except ssl.SSLError as e:
        raise CoordinatorUnavailable(
            f"{target.hostport} does not speak TLS as a coordinator with --listen does ({e.reason})"
        ) from None
    except OSError as e:
        raise CoordinatorUnavailable(
            f"cannot reach a coordinator at {target.hostport}: {e}"
        ) from None


def trusted(
    target: Target, home: Path, expected: str | None = None, ca: bytes | None = None,
    timeout: float = 5.0,
) -> tuple[bytes, bytes | None]:  # fmt: skip
    """The certificate of `target` (checked against its pin, see pin()) and the roots the
    channel is to verify it with: the certificate itself when self-signed; else `ca`, or this
    machine's roots (None: grpc's own), once the chain verifies (before anything is pinned)."""
    pem = fetch_certificate(target.host, target.port, timeout)
    if is_self_signed(pem):
        return pin(target, home, pem, expected), pem
    roots = ca if ca is not None else system_roots()
    source = "the CA bundle given (CONVOY_COORDINATOR_CA)" if ca else "this machine's CA roots"
    chain_check(target, pem, roots, source, timeout)
    return pin(target, home, pem, expected), roots


def tls_options(target: Target, cert_pem: bytes) -> list[tuple[str, object]]:
    """Channel options: the message size and, for a self-signed certificate, the name grpc
    checks it for (one it has, when the name connected to is not among them). A CA-issued
    certificate must be for the name connected to, as everywhere in TLS."""
    options: list[tuple[str, object]] = [("grpc.max_receive_message_length", MAX_RECEIVE)]
    if not is_self_signed(cert_pem):
        return options
    names = names_in(cert_pem)
    if names and target.host not in names:
        options.append(("grpc.ssl_target_name_override", names[0]))
    return options


def credentials(roots: bytes | None, token: str | None) -> grpc.ChannelCredentials:
    """TLS verifying the server up to `roots` (PEM: a self-signed certificate alone, or CAs;
    None: grpc's default roots), and the token as `authorization: Bearer` on every call."""
    tls = grpc.ssl_channel_credentials(root_certificates=roots)
    if token is None:
        return tls
    return grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(token))


async def tls_channel(
    target: Target, home: Path, token: str | None, fingerprint: str | None = None,
    ca: str | os.PathLike[str] | None = None, timeout: float = 5.0,
) -> grpc.aio.Channel:  # fmt: skip
    """A TLS channel to `target` (not yet connected), after its certificate is checked
    (trusted(): a network round trip or two, in a worker thread). `fingerprint` and `ca`
    default to $CONVOY_COORDINATOR_FINGERPRINT and $CONVOY_COORDINATOR_CA."""
    expected = resolve_fingerprint(fingerprint)
    bundle = resolve_ca(ca)
    pem, roots = await asyncio.to_thread(trusted, target, home, expected, bundle, timeout)
    return grpc.aio.secure_channel(
        target.hostport, credentials(roots, token), options=tls_options(target, pem)
    )


NOT_GRPC = (
    " (it took a TLS connection but not gRPC over it: is it a coordinator started with "
    "--listen, and is its certificate for the name you connect to?)"
)


def check_socket(where: Target) -> None:
    """CoordinatorUnavailable, at once, for a socket that is not there (nothing to wait for)."""
    if where.socket is not None and not where.socket.exists():
        raise CoordinatorUnavailable(
            f"no coordinator is running (no socket at {where.socket}); start one with `convoy up`"
        )


async def channel_to(
    where: Target, home: Path, token: str | None, fingerprint: str | None = None,
    ca: str | os.PathLike[str] | None = None, timeout: float = 5.0,
) -> grpc.aio.Channel:  # fmt: skip
    """A channel to `where`, not yet connected: the unix socket's, or tls_channel()'s."""
    if where.remote:
        return await tls_channel(where, home, token, fingerprint, ca, timeout)
    return grpc.aio.insecure_channel(
        f"unix:{where.socket}", options=[("grpc.max_receive_message_length", MAX_RECEIVE)]
    )


async def until_ready(channel: grpc.aio.Channel, where: Target, said: str, timeout: float) -> None:
    """Wait until `channel` connects; else close it and raise CoordinatorUnavailable, naming
    the coordinator as `said`."""
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout)
    except (TimeoutError, grpc.aio.AioRpcError):
        await channel.close(None)
        hint = NOT_GRPC if where.remote else "; start one with `convoy up`"
        raise CoordinatorUnavailable(f"the coordinator does not answer on {said}{hint}") from None


async def open_channel(
    target: str | None, home: Path, token: str | None, fingerprint: str | None = None,
    timeout: float = 5.0, ca: str | os.PathLike[str] | None = None,
) -> tuple[grpc.aio.Channel, str]:  # fmt: skip
    """A channel to the coordinator at `target` (see parse_target), ready, and the target as
    said to users. `fingerprint`: the certificate to expect (default:
    $CONVOY_COORDINATOR_FINGERPRINT, else what known_coordinators has or records). `ca`: a
    CA bundle file (PEM) a CA-issued certificate is verified with (default:
    $CONVOY_COORDINATOR_CA, else this machine's roots). CoordinatorUnavailable when nothing
    answers in `timeout` s; UntrustedCoordinator when the certificate is not the pinned one,
    or is CA-issued and does not verify. The token is not checked here: the first call is."""
    where = parse_target(target, home)
    check_socket(where)
    channel = await channel_to(where, home, token, fingerprint, ca, timeout)
    await until_ready(channel, where, str(where), timeout)
    return channel, str(where)
