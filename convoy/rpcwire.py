"""gRPC wire details the coordinator and its clients share: registering a service so that a
request that is not its message gets INVALID_ARGUMENT, and the names of trailing metadata.

grpcio answers UNKNOWN, with the parser's exception, when a request's bytes do not parse as
the method's message. Here each method's deserializer gives back a marker instead, and the
method answers INVALID_ARGUMENT with a sentence before the servicer sees anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import grpc
from google.protobuf.message import DecodeError

# Trailing metadata of a build's Logs stream when the build was made for another submission
# (before, or while this one waited): nothing was compiled for it, and nothing streamed.
BUILD_REUSED = "convoy-build-reused"
# Trailing metadata of a refused call: the exit status its error has (2: a request refused,
# nothing done; 1: a failure, such as a host that does not answer), where the status code
# alone does not say (FAILED_PRECONDITION is either).
EXIT_STATUS = "convoy-exit-status"

Ctx = grpc.aio.ServicerContext
_Unary = Callable[[Any, Ctx], Any]
_Streaming = Callable[[Any, Ctx], AsyncIterator[Any]]


class _Garbled:
    """What a request that did not parse deserialises to."""

    def __init__(self, what: str, why: str) -> None:
        self.message = f"the request is not a valid {what} message ({why})"


def _parsing(parse: Callable[[bytes], Any], what: str) -> Callable[[bytes], Any]:
    def parsed(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as e:
            return _Garbled(what, str(e) or "it does not parse")

    return parsed


def _unary(behaviour: Callable[[Any, Ctx], Any]) -> Callable[[Any, Ctx], Any]:
    async def checked(request: Any, context: Ctx) -> Any:
        if isinstance(request, _Garbled):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return await behaviour(request, context)

    return checked


def _streaming(
    behaviour: Callable[[Any, Ctx], AsyncIterator[Any]],
) -> Callable[[Any, Ctx], AsyncIterator[Any]]:
    async def checked(request: Any, context: Ctx) -> AsyncIterator[Any]:
        if isinstance(request, _Garbled):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        async for item in behaviour(request, context):
            yield item

    return checked


class _Handlers:
    """Stands in for the server while generated code registers its method handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.methods: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers come again, by name, through the call below

    def add_registered_method_handlers(
        self, service: str, methods: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.service, self.methods = service, dict(methods)


def add_checked(
    add_to_server: Callable[[Any, Any], None], servicer: Any, server: grpc.aio.Server
) -> None:
    """`add_to_server` (a generated `add_XServicer_to_server`) for `servicer`, on `server`,
    with every unary-request method answering INVALID_ARGUMENT to bytes that do not parse."""
    got = _Handlers()
    add_to_server(servicer, got)
    if not got.methods:
        raise RuntimeError("the generated code registered no methods by name")
    methods: dict[str, grpc.RpcMethodHandler] = {}
    for name, h in got.methods.items():
        what = f"{got.service}.{name} request"
        parse, unary, streaming = h.request_deserializer, h.unary_unary, h.unary_stream
        if h.request_streaming or parse is None:
            methods[name] = h  # none of ours; left as grpcio makes it
        elif streaming is not None:  # the aio server's: async generators
            methods[name] = grpc.unary_stream_rpc_method_handler(
                _streaming(cast(_Streaming, streaming)), _parsing(parse, what),
                h.response_serializer,
            )  # fmt: skip
        elif unary is not None:  # the aio server's: coroutines
            methods[name] = grpc.unary_unary_rpc_method_handler(
                _unary(cast(_Unary, unary)), _parsing(parse, what), h.response_serializer
            )
        else:
            methods[name] = h
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(got.service, methods),))
    server.add_registered_method_handlers(got.service, methods)  # type: ignore[attr-defined]
