"""Tokens for the TCP listener: only their hashes are kept, revoking counts at once, and the
check compares hashes in constant time; the interceptor refuses what has no valid token."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from convoy.coordinator import tokens
from convoy.coordinator.auth import BearerAuth, bearer
from convoy.coordinator.tokens import (
    TokenBook,
    create_token,
    read_tokens,
    revoke_token,
    tokens_path,
)
from convoy.errors import NotFound, UsageError


def test_only_the_tokens_hash_is_stored_in_a_private_file(tmp_path: Path) -> None:
    token = create_token(tmp_path, "alice")
    assert token.startswith("convoy_") and len(token) >= len("convoy_") + 43
    text = tokens_path(tmp_path).read_text()
    assert token not in text and token[len("convoy_") :] not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert stat.S_IMODE(os.stat(tokens_path(tmp_path)).st_mode) == 0o600
    [record] = read_tokens(tmp_path)
    assert (record.name, record.sha256) == ("alice", hashlib.sha256(token.encode()).hexdigest())


def test_each_token_is_new_and_random(tmp_path: Path) -> None:
    assert create_token(tmp_path, "a") != create_token(tmp_path, "b")


def test_a_running_book_sees_a_create_and_a_revoke_without_being_made_again(
    tmp_path: Path,
) -> None:
    book = TokenBook(tmp_path)
    assert book.holder("convoy_anything") is None  # no file: nobody
    alice = create_token(tmp_path, "alice")
    bob = create_token(tmp_path, "bob")
    assert (book.holder(alice), book.holder(bob)) == ("alice", "bob")
    revoke_token(tmp_path, "alice")
    assert (book.holder(alice), book.holder(bob)) == (None, "bob")
    assert book.holder(alice + "x") is None


def test_names_are_unique_and_plain_and_revoking_an_unknown_one_says_so(tmp_path: Path) -> None:
    create_token(tmp_path, "ci")
    with pytest.raises(UsageError, match="exists"):
        create_token(tmp_path, "ci")
    with pytest.raises(UsageError, match="not a token name"):
        create_token(tmp_path, "a b/c")
    with pytest.raises(NotFound, match="no token named nobody"):
        revoke_token(tmp_path, "nobody")
    assert [t.name for t in read_tokens(tmp_path)] == ["ci"]


def test_hashes_are_compared_with_compare_digest_each_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_token(tmp_path, "a")
    b = create_token(tmp_path, "b")
    create_token(tmp_path, "c")
    calls: list[tuple[str, str]] = []
    real = tokens.hmac.compare_digest

    def spy(x: str, y: str) -> bool:
        calls.append((x, y))
        return real(x, y)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    assert TokenBook(tmp_path).holder(b) == "b"
    assert len(calls) == 3  # no early exit at the match
    assert all(y == hashlib.sha256(b.encode()).hexdigest() for _, y in calls)


def test_the_bearer_header_is_read_as_grpc_sends_it() -> None:
    assert bearer((("authorization", "Bearer convoy_x"),)) == "convoy_x"
    assert bearer((("Authorization", "bearer  convoy_x "),)) == "convoy_x"
    assert bearer((("authorization", "Basic abc"),)) is None
    assert bearer((("authorization", "Bearer "),)) is None
    assert bearer(None) is None


def test_the_interceptor_refuses_no_token_an_unknown_one_and_a_revoked_one(
    tmp_path: Path,
) -> None:
    auth = BearerAuth(TokenBook(tmp_path))
    token = create_token(tmp_path, "alice")

    def header(t: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {t}"),)

    assert auth.refusal(header(token)) is None
    assert "needs a token" in (auth.refusal(()) or "")
    assert "not valid" in (auth.refusal(header("convoy_guess")) or "")
    revoke_token(tmp_path, "alice")
    assert "not valid" in (auth.refusal(header(token)) or "")


def test_with_no_tokens_everything_is_refused(tmp_path: Path) -> None:
    auth = BearerAuth(TokenBook(tmp_path))
    assert auth.refusal((("authorization", "Bearer "),)) is not None
    assert auth.refusal((("authorization", "Bearer convoy_"),)) is not None


@pytest.mark.parametrize(
    "text",
    ["{not json", '[{"name": "a"}]', '[{"name": "a", "created": "", "sha256": "\u00e9"}]'],
)
def test_a_broken_tokens_file_refuses_rather_than_fails(tmp_path: Path, text: str) -> None:
    tokens_path(tmp_path).write_text(text)
    auth = BearerAuth(TokenBook(tmp_path))
    assert "cannot read its tokens" in (auth.refusal((("authorization", "Bearer x"),)) or "")
