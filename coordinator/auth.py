"""Bearer-token checks for the coordinator's TCP listener.

The TCP listener is its own grpc.aio server, with this interceptor, sharing the unix socket
server's servicer: the socket (0600, its user's alone) needs no token, and keeping the two
apart means no call can reach the servicer over TCP by looking like a socket peer. One server
telling peers apart could not do it in an interceptor anyway: grpc gives an interceptor the
method and metadata, not the peer.

A call without a valid token gets a handler of its kind (unary or streaming) that answers
UNAUTHENTICATED before reading anything, so the servicer's method never runs. Its request is
left as bytes: nothing of an unauthenticated caller is parsed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from convoy.coordinator.tokens import TokenBook
from convoy.errors import ConvoyError

log = logging.getLogger("convoy.coordinator.auth")

Ctx = grpc.aio.ServicerContext


def bearer(metadata: Any) -> str | None:
    """The token of an `authorization: Bearer TOKEN` header, or None."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class BearerAuth(grpc.aio.ServerInterceptor):
    def __init__(self, book: TokenBook) -> None:
        self.book = book

    def refusal(self, metadata: Any) -> str | None:
        """Why a call with these metadata is refused (said to the caller), or None."""
        token = bearer(metadata)
        if token is None:
            return (
                "this coordinator needs a token over TCP: set CONVOY_TOKEN (the coordinator's "
                "admin makes one with `convoy token create NAME`)"
            )
        try:
            if self.book.holder(token) is None:
                return "the token is not valid (unknown, or revoked); ask the admin for one"
        except ConvoyError as e:  # tokens.json broken: refuse, and say why in the log
            log.error("cannot read the tokens: %s", e)
            return "the coordinator cannot read its tokens; its admin is told why in its log"
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)  # looked up, not run
        reason = self.refusal(details.invocation_metadata)
        return handler if reason is None else refusing(handler, details.method, reason)


def refusing(handler: grpc.RpcMethodHandler | None, method: str, reason: str) -> Any:
    """A handler shaped like `handler` (a unary one for a method there is none of) that
    refuses the call with UNAUTHENTICATED."""

    async def refuse(context: Ctx) -> None:
        # The peer and the reason: never the token.
        log.warning("refused %s from %s: %s", method, context.peer(), reason)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    async def unary(request: Any, context: Ctx) -> None:
        await refuse(context)

    async def streaming(request: Any, context: Ctx) -> AsyncIterator[None]:
        await refuse(context)
        yield None  # never reached: abort raises

    streams_in = handler is not None and handler.request_streaming
    streams_out = handler is not None and handler.response_streaming
    if streams_in and streams_out:
        return grpc.stream_stream_rpc_method_handler(streaming)
    if streams_in:
        return grpc.stream_unary_rpc_method_handler(unary)
    if streams_out:
        return grpc.unary_stream_rpc_method_handler(streaming)
    return grpc.unary_unary_rpc_method_handler(unary)
