"""A real `convoy up --listen` serving a certificate issued by a CA (a test root, through an
intermediate: the --cert file holds the leaf and its intermediate, as a CA hands them out),
its local agent on the fake runtime: a client given the CA (CONVOY_COORDINATOR_CA, or `ca=`)
and a token calls the API, by IP address or by name, and pins the leaf; a client without it
(this machine's roots do not know the test CA) is refused with a sentence, no traceback, and
pins nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from convoy.certs import fingerprint
from convoy.client.channel import known_path, open_channel
from convoy.errors import UntrustedCoordinator
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc
from tests.testca import root

from .listening import Listening, coordinator_up, fake_env, free_port
from .test_remote import RPC_TIMEOUT_S


@dataclass
class Served(Listening):
    folder: Path
    ca: Path  # the test root, PEM: what a client is given
    leaf_fingerprint: str
    chain_fingerprints: list[str]  # of the other certificates of the --cert file


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    folder = Path(tempfile.mkdtemp(prefix="cvca-", dir="/tmp"))  # short: unix sockets
    home = folder / "home"
    home.mkdir(mode=0o700)
    top = root()
    middle = top.issue("convoy test intermediate", ca=True)
    leaf = middle.issue("convoy test coordinator", ["127.0.0.1", "localhost"])
    (folder / "chain.pem").write_bytes(leaf.pem + middle.pem)
    (folder / "leaf.key").write_bytes(leaf.key_pem)
    os.chmod(folder / "leaf.key", 0o600)
    (folder / "ca.pem").write_bytes(top.pem)
    port = free_port()
    args = ["--listen", f"127.0.0.1:{port}", "--cert", str(folder / "chain.pem"),
            "--key", str(folder / "leaf.key")]  # fmt: skip
    try:
        with coordinator_up(home, folder / "up.log", args, fake_env(home)):
            yield Served(home, port, folder, folder / "ca.pem", fingerprint(leaf.pem),
                         [fingerprint(middle.pem), fingerprint(top.pem)])  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_coordinator_logs_the_leafs_fingerprint(served: Served) -> None:
    log = (served.folder / "up.log").read_text()
    assert served.leaf_fingerprint in log
    assert not [fp for fp in served.chain_fingerprints if fp in log]


def test_the_cli_given_the_ca_calls_the_api_and_pins_the_leaf(
    served: Served, tmp_path: Path
) -> None:
    token = served.token("alice")
    client = dict(CONVOY_HOME=str(tmp_path / "h"), CONVOY_TOKEN=token,
                  CONVOY_COORDINATOR=f"grpcs://127.0.0.1:{served.port}",
                  CONVOY_COORDINATOR_CA=str(served.ca))  # fmt: skip
    out = served.convoy("hosts", **client)
    assert out.returncode == 0, out.stderr
    assert "local" in out.stdout and "trusting coordinator" in out.stderr
    pins = known_path(tmp_path / "h").read_text()
    assert pins == f"127.0.0.1:{served.port} {served.leaf_fingerprint}\n"
    out = served.convoy("hosts", **client)  # the pin holds
    assert out.returncode == 0, out.stderr
    assert "trusting" not in out.stderr


def test_without_the_ca_the_connection_is_refused_saying_why(
    served: Served, tmp_path: Path
) -> None:
    token = served.token("bob")
    client = dict(CONVOY_HOME=str(tmp_path / "h"), CONVOY_TOKEN=token,
                  CONVOY_COORDINATOR=f"grpcs://127.0.0.1:{served.port}")  # fmt: skip
    out = served.convoy("hosts", **client)
    assert out.returncode != 0
    assert "does not verify against this machine's CA roots" in out.stderr, out.stderr
    assert "CONVOY_COORDINATOR_CA" in out.stderr and "Traceback" not in out.stderr
    assert not known_path(tmp_path / "h").exists()  # nothing pinned
    # Another CA than the one that issued it: refused the same way.
    (tmp_path / "other.pem").write_bytes(root("another CA").pem)
    out = served.convoy("hosts", CONVOY_COORDINATOR_CA=str(tmp_path / "other.pem"), **client)
    assert out.returncode != 0
    assert "does not verify against the CA bundle given" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not known_path(tmp_path / "h").exists()


def test_python_given_the_ca_calls_by_name_with_the_fingerprint_expected(
    served: Served, tmp_path: Path
) -> None:
    token = served.token("carol")

    async def main() -> None:
        channel, where = await open_channel(
            f"grpcs://localhost:{served.port}", tmp_path, token,
            fingerprint=served.leaf_fingerprint, ca=served.ca, timeout=RPC_TIMEOUT_S,
        )  # fmt: skip
        assert where == f"grpcs://localhost:{served.port}"
        async with channel:
            stub = pb_grpc.CoordinatorStub(channel)
            hosts = await stub.Hosts(pb.HostsRequest(), timeout=RPC_TIMEOUT_S)
            assert [h.name for h in hosts.hosts] == ["local"]
        assert not known_path(tmp_path).exists()  # expected up front: nothing recorded
        with pytest.raises(UntrustedCoordinator, match="not the expected"):
            await open_channel(f"grpcs://localhost:{served.port}", tmp_path, token,
                               fingerprint=served.chain_fingerprints[0], ca=served.ca)  # fmt: skip

    asyncio.run(main())


def test_the_sync_client_takes_the_ca_as_an_argument(served: Served, tmp_path: Path) -> None:
    from convoy import Client

    token = served.token("dave")
    with Client(tmp_path, coordinator=f"grpcs://127.0.0.1:{served.port}", token=token,
                ca=served.ca) as c:  # fmt: skip
        assert [h.name for h in c.hosts()] == ["local"]
