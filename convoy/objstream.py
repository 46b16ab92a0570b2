"""The object stream: a sync's objects into a host's store over a plain socket beside gRPC.

The agent listens on `agent.objs` next to its gRPC socket `agent.sock`; the coordinator reaches
it through the host's SSH connection (a channel to the socket, no local hop) or directly on
this machine.
What to send is learned over gRPC first (MissingObjects); this stream carries only the bytes.

Why not gRPC: moving the bench's first sync (126 MB) through PutObjects over the forwarded
socket took the coordinator 0.42-0.45 CPU-s and 0.53-0.56 s even with nothing left to store
on the host; the same bytes in this framing through an SSH channel took 0.23-0.26 CPU-s and
0.24-0.27 s. The difference is gRPC's framing and flow control, and the extra socket.

The stream: HEADER, then frames, then a frame with END. A frame is

    flags: u8 (LAST: the object's last chunk; END: the stream's end, nothing follows)
    hash length: u8 (0: a chunk of the large object in progress)
    data length: u32, big-endian
    hash: ASCII, data

A whole small object is one frame with its hash and LAST; a large one, frames of up to a few
MB, the first with its hash, the last with LAST. Small objects may come between a large
object's chunks. The agent answers with one line: "ok STORED BYTES" or "error KIND MESSAGE",
KIND being `invalid` (a bad frame or an object that does not match its hash), `full` (the
host could not store it: a full disk) or `agent` (the agent failed otherwise, or is
stopping). A stream that ends without END is abandoned: no part of an object is kept.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

HEADER = b"convoy-objects 1\n"
LAST = 1
END = 2
_FRAME = struct.Struct(">BBI")
MAX_DATA = 64 * 1024 * 1024  # a frame's data at most
MAX_REPLY = 4096
INVALID = "invalid"
FULL = "full"
AGENT = "agent"


def store_socket_beside(agent_socket: str) -> str:
    """Where an agent listens for object streams: beside its gRPC socket, named after it
    (agent.sock: agent.objs, a path as long)."""
    return agent_socket.removesuffix(".sock") + ".objs"


class StreamError(Exception):
    """The stream is not well formed; nothing after it can be read."""


class StreamCut(StreamError):
    """The stream ended early: its sender went away."""


class Chunk(NamedTuple):
    hash: str  # "" for the next chunk of the large object in progress
    data: bytes
    last: bool


def frame_header(hash: str, size: int, last: bool) -> bytes:
    """What goes before a chunk's data."""
    name = hash.encode("ascii")
    return _FRAME.pack(LAST if last else 0, len(name), size) + name


END_FRAME = _FRAME.pack(END, 0, 0)


def read_header(f: BinaryIO) -> None:
    got = f.read(len(HEADER))
    if not got:
        raise StreamCut("the stream ended before its header")
    if got != HEADER:
        raise StreamError(f"not an object stream (began {got[:24]!r})")


def read_frames(f: BinaryIO) -> Iterator[Chunk]:
    """The stream's chunks up to its END frame (StreamCut if it ends before, StreamError if
    it is not well formed)."""
    while True:
        head = f.read(_FRAME.size)
        if len(head) < _FRAME.size:
            raise StreamCut("the stream ended without its end frame")
        flags, name_len, size = _FRAME.unpack(head)
        if flags & END:
            return
        if flags & ~LAST or size > MAX_DATA:
            raise StreamError(f"a bad frame (flags {flags}, {size} bytes)")
        name = f.read(name_len)
        data = f.read(size)
        if len(name) < name_len or len(data) < size:
            raise StreamCut("the stream ended within a frame")
        try:
            hash = name.decode("ascii")
        except UnicodeDecodeError:
            raise StreamError(f"a frame named {name[:80]!r}") from None
        yield Chunk(hash, data, bool(flags & LAST))


def reply_ok(stored: int, size: int) -> bytes:
    return f"ok {stored} {size}\n".encode()


def reply_error(kind: str, message: str) -> bytes:
    flat = " ".join(message.split())
    return f"error {kind} {flat}\n".encode()[: MAX_REPLY - 1].rstrip(b"\n") + b"\n"


class Reply(NamedTuple):
    stored: int
    size: int
    error_kind: str  # "" when the objects were stored
    message: str


def parse_reply(line: bytes) -> Reply:
    """The agent's answer line; StreamError when it is not one."""
    text = line.decode("utf-8", "replace").rstrip("\n")
    word, _, rest = text.partition(" ")
    if word == "ok":
        stored, _, size = rest.partition(" ")
        if stored.isdigit() and size.isdigit():
            return Reply(int(stored), int(size), "", "")
    elif word == "error":
        kind, _, message = rest.partition(" ")
        if kind:
            return Reply(0, 0, kind, message)
    raise StreamError(f"the store answered {text[:200]!r}" if text else "the store hung up")
