"""Bearer tokens for the coordinator's TCP listener (`convoy token create|revoke|list`).

CONVOY_HOME/tokens.json holds, per token, its name, when it was made, and the SHA-256 of the
token, never the token: a plain hash, not a slow password hash, because a token is 256 random
bits (`secrets`), which no one guesses or brute-forces from its hash, slow or not.

The admin commands edit the file directly, replacing it atomically (a written temporary file
renamed over it), one at a time (a lock file). A running coordinator reads it again whenever
its inode, size or mtime changed, so a token made or revoked counts from the next call on,
with no restart.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from convoy.errors import NotFound, UsageError
from convoy.paths import open_state

TOKENS_FILE = "tokens.json"
PREFIX = "convoy_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TokenRecord:
    name: str
    created: str  # ISO 8601, UTC
    sha256: str  # of the token's text


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_path(home: Path) -> Path:
    return home / TOKENS_FILE


def read_tokens(home: Path) -> list[TokenRecord]:
    """The tokens on record; none when the file does not exist (TCP then refuses everyone)."""
    try:
        text = tokens_path(home).read_text()
    except FileNotFoundError:
        return []
    try:
        tokens = [TokenRecord(t["name"], t["created"], t["sha256"]) for t in json.loads(text)]
    except (ValueError, TypeError, KeyError) as e:
        raise UsageError(f"{tokens_path(home)} is not a convoy tokens file: {e}") from None
    for t in tokens:  # compare_digest takes ASCII text only: anything else is refused here
        if not isinstance(t.sha256, str) or not _SHA256.fullmatch(t.sha256):
            raise UsageError(f"{tokens_path(home)}: token {t.name!r} has no valid sha256")
    return tokens


def _write_tokens(home: Path, tokens: list[TokenRecord]) -> None:
    path = tokens_path(home)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    with open_state(tmp, "wb") as f:
        f.write(json.dumps([t.__dict__ for t in tokens], indent=2).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _editing(home: Path) -> Iterator[list[TokenRecord]]:
    """The tokens, to change in place; written back when the block ends without error."""
    with open_state(home / ".tokens.lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tokens = read_tokens(home)
        yield tokens
        _write_tokens(home, tokens)


def create_token(home: Path, name: str) -> str:
    """A new token named `name`, recorded by its hash; the token itself is returned, once."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a token name: up to 64 letters, digits and . _ @ -, starting "
            "with a letter or digit"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    with _editing(home) as tokens:
        if any(t.name == name for t in tokens):
            raise UsageError(f"a token named {name} exists; `convoy token revoke {name}` first")
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
        tokens.append(TokenRecord(name, now, digest(token)))
    return token


def revoke_token(home: Path, name: str) -> None:
    with _editing(home) as tokens:
        kept = [t for t in tokens if t.name != name]
        if len(kept) == len(tokens):
            raise NotFound(f"no token named {name} (`convoy token list` shows them)")
        tokens[:] = kept


class TokenBook:
    """The coordinator's view of tokens.json, read again when the file changes."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._seen: tuple[int, int, int] | None = None
        self._tokens: list[TokenRecord] = []

    def _current(self) -> list[TokenRecord]:
        try:
            st = os.stat(tokens_path(self.home))
        except FileNotFoundError:
            self._seen, self._tokens = None, []
            return []
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        if seen != self._seen:
            self._tokens = read_tokens(self.home)
            self._seen = seen
        return self._tokens

    def holder(self, token: str) -> str | None:
        """The name of the token `token` is, or None. Hashes are compared in constant time,
        each of them (no early exit), so timing tells nothing of which one came close."""
        wanted = digest(token)
        found = None
        for t in self._current():
            if hmac.compare_digest(t.sha256, wanted):
                found = t.name
        return found
