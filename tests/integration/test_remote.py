"""A real `convoy up --listen` (its local agent on the fake runtime, no Docker) called over real
TLS: a valid token works; no token, a wrong one and one revoked while it runs are refused
UNAUTHENTICATED for every method of the service (unary and streaming alike), and nothing
changes; plaintext to the TCP port gets nowhere, for every method too; a certificate other
than the pinned one is refused."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from convoy.client.channel import known_path, open_channel
from convoy.errors import UntrustedCoordinator
from convoy.v1 import coordinator_pb2 as pb
from convoy.v1 import coordinator_pb2_grpc as pb_grpc

from .conftest import write_experiment
from .listening import Listening, coordinator_up, fake_env, free_port, kill_all_of

RPC_TIMEOUT_S = 30  # a bound on a call that must fail, so that a wrong answer cannot hang


@dataclass
class Remote(Listening):
    client_home: Path  # a client's own: its known_coordinators
    spec: Path

    @property
    def target(self) -> str:
        return f"grpcs://127.0.0.1:{self.port}"

    async def submissions(self) -> int:
        """How many submissions the store has, asked on the unix socket (no token)."""
        channel, _ = await open_channel("", self.home, None)
        async with channel:
            stub = pb_grpc.CoordinatorStub(channel)
            return len((await stub.ListSubmissions(pb.ListSubmissionsRequest())).submissions)


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    folder = Path(tempfile.mkdtemp(prefix="cvr-", dir="/tmp"))  # short: unix sockets
    home = folder / "home"
    spec = write_experiment(folder / "exp", """
        name: remote
        image: any/image:1
        command: ignored by the fake
        resources: {cpus: 0.25, memory: 16MiB}
    """)  # fmt: skip
    port = free_port()
    home.mkdir(mode=0o700)
    try:
        with coordinator_up(home, folder / "up.log", ["--listen", f"127.0.0.1:{port}"],
                            fake_env(home)):  # fmt: skip
            yield Remote(home, port, folder / "client", spec)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _submit(remote: Remote) -> pb.SubmitRequest:
    return pb.SubmitRequest(spec_path=str(remote.spec), spec_yaml=remote.spec.read_text())


METHODS = pb.DESCRIPTOR.services_by_name["Coordinator"].methods


def _request(remote: Remote, method: MethodDescriptor) -> Message:
    """What a caller sends: the Submit the valid caller sends (so that "nothing changed"
    means it), an empty request for every other method."""
    if method.name == "Submit":
        return _submit(remote)
    return message_factory.GetMessageClass(method.input_type)()


async def _each_method(
    remote: Remote, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()
) -> dict[str, grpc.aio.AioRpcError]:
    """Call every method of the service on `channel`, unary and streaming requests and
    answers alike, by the method's own kind: the error each ends with (none may succeed)."""
    errors: dict[str, grpc.aio.AioRpcError] = {}
    for method in METHODS:
        path = f"/convoy.v1.Coordinator/{method.name}"
        req = _request(remote, method)
        answer = message_factory.GetMessageClass(method.output_type).FromString
        kind = (method.client_streaming, method.server_streaming)
        make = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, False): channel.stream_unary,
            (True, True): channel.stream_stream,
        }[kind]
        callable_ = make(path, request_serializer=type(req).SerializeToString,
                         response_deserializer=answer)  # fmt: skip
        call = callable_(iter([req]) if method.client_streaming else req,
                         timeout=RPC_TIMEOUT_S, metadata=metadata)  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as e:
            if method.server_streaming:
                async for _ in call:
                    pass
            else:
                await call
        errors[method.name] = e.value
    return errors


async def _refusals(remote: Remote, token: str | None) -> dict[str, grpc.StatusCode]:
    """The status every method of the service ends with, called with `token`."""
    channel, _ = await open_channel(remote.target, remote.client_home, token)
    async with channel:
        errors = await _each_method(remote, channel)
    for name, e in errors.items():
        assert "token" in (e.details() or ""), name
    return {name: e.code() for name, e in errors.items()}


REFUSED = {m.name: grpc.StatusCode.UNAUTHENTICATED for m in METHODS}


def test_every_method_of_the_service_is_tried() -> None:
    """Not vacuous: the methods the refusal tests call are the service's, all of them."""
    proto = Path(__file__).resolve().parents[2] / "proto/convoy/v1/coordinator.proto"
    named = set(re.findall(r"^\s*rpc (\w+)\(", proto.read_text(), re.M))
    assert set(REFUSED) == named and len(named) > 15


def test_a_valid_token_calls_the_api_over_tls(remote: Remote) -> None:
    token = remote.token("alice")  # made while the coordinator runs

    async def main() -> None:
        before = await remote.submissions()
        channel, where = await open_channel(remote.target, remote.client_home, token)
        assert where == remote.target
        async with channel:
            stub = pb_grpc.CoordinatorStub(channel)
            hosts = await stub.Hosts(pb.HostsRequest(), timeout=RPC_TIMEOUT_S)
            assert [h.name for h in hosts.hosts] == ["local"]
            await stub.ListSubmissions(pb.ListSubmissionsRequest(), timeout=RPC_TIMEOUT_S)
            # The very Submit the refused callers send, so that "nothing changed" means it.
            await stub.Submit(_submit(remote), timeout=RPC_TIMEOUT_S)
            events = stub.Events(pb.EventsRequest(snapshot=True), timeout=RPC_TIMEOUT_S)
            first = await events.read()
            assert isinstance(first, pb.RunEvent)
            events.cancel()
        assert await remote.submissions() == before + 1

    asyncio.run(main())
    assert str(remote.target.removeprefix("grpcs://")) in known_path(remote.client_home).read_text()


def test_no_token_and_a_wrong_one_are_refused_and_change_nothing(remote: Remote) -> None:
    remote.token("someone")  # tokens exist: refusals are not for want of any

    async def main() -> None:
        before = await remote.submissions()
        assert await _refusals(remote, None) == REFUSED
        assert await _refusals(remote, "convoy_" + "A" * 43) == REFUSED
        assert await remote.submissions() == before

    asyncio.run(main())
    log = (remote.home.parent / "up.log").read_text()
    assert "refused /convoy.v1.Coordinator/Submit from ipv4:127.0.0.1" in log
    assert "convoy_AAAA" not in log  # tokens are never logged


def test_a_token_revoked_while_the_coordinator_runs_is_refused(remote: Remote) -> None:
    token = remote.token("bob")

    async def works() -> None:
        channel, _ = await open_channel(remote.target, remote.client_home, token)
        async with channel:
            stub = pb_grpc.CoordinatorStub(channel)
            await stub.ListSubmissions(pb.ListSubmissionsRequest(), timeout=RPC_TIMEOUT_S)

    asyncio.run(works())
    out = remote.convoy("token", "revoke", "bob")
    assert out.returncode == 0, out.stderr

    async def main() -> None:
        before = await remote.submissions()
        assert await _refusals(remote, token) == REFUSED
        assert await remote.submissions() == before

    asyncio.run(main())


def test_plaintext_to_the_tcp_port_gets_nowhere(remote: Remote) -> None:
    """Every method, called in plaintext with a valid token, fails; nothing changes."""
    token = remote.token("carol")

    async def main() -> None:
        before = await remote.submissions()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{remote.port}") as channel:
            meta = (("authorization", f"Bearer {token}"),)
            errors = await _each_method(remote, channel, meta)
        assert set(errors) == set(REFUSED)
        assert await remote.submissions() == before

    asyncio.run(main())


def test_a_certificate_other_than_the_pinned_one_is_refused(remote: Remote, tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(UntrustedCoordinator, match="not the expected"):
            await open_channel(remote.target, tmp_path, "convoy_x", fingerprint="00" * 32)
        assert not known_path(tmp_path).exists()
        known_path(tmp_path).write_text(f"127.0.0.1:{remote.port} {'11' * 32}\n")
        with pytest.raises(UntrustedCoordinator, match="CHANGED"):
            await open_channel(remote.target, tmp_path, "convoy_x")

    asyncio.run(main())


def test_the_cli_calls_a_remote_coordinator_with_the_token_from_the_environment(
    remote: Remote, tmp_path: Path
) -> None:
    token = remote.token("dave")
    client = dict(CONVOY_HOME=str(tmp_path / "h"), CONVOY_COORDINATOR=remote.target)
    out = remote.convoy("hosts", CONVOY_TOKEN=token, **client)
    assert out.returncode == 0, out.stderr
    assert "local" in out.stdout and "trusting coordinator" in out.stderr
    out = remote.convoy("runs", **client)  # no token
    assert out.returncode == 1
    assert "refused the call" in out.stderr and "CONVOY_TOKEN" in out.stderr
    assert "Traceback" not in out.stderr
    out = remote.convoy("--coordinator", "grpc://127.0.0.1:1", "runs")
    assert out.returncode == 2 and "plaintext is refused" in out.stderr


def test_a_port_in_use_or_a_cert_without_listen_is_a_usage_error_with_nothing_started(
    remote: Remote, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    try:
        for args, said in (
            (["--listen", f"127.0.0.1:{remote.port}"], "cannot listen there"),
            (["--cert", str(tmp_path / "c.pem")], "are for --listen"),
            (["--listen", "nohostport"], "expected HOST:PORT"),
        ):
            out = remote.convoy("up", *args, CONVOY_HOME=str(home))
            assert out.returncode == 2, out.stderr
            assert said in out.stderr and "Traceback" not in out.stderr
        assert not (home / "agent").exists()  # refused before the local agent was started
    finally:
        assert not kill_all_of(home)
