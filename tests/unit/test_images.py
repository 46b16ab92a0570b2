"""Which image references name a registry (and so are pulled on the host before shipping)."""

from __future__ import annotations

import pytest

from coordinator.images import names_registry


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("convoy/python:3.11", False),
        ("busybox", False),
        ("registry.example.org/team/model:1", True),
        ("registry:5000/model", True),
        ("localhost/model:dev", True),
        ("team/model", False),
    ],
)
def test_names_registry_follows_dockers_rule(image: str, expected: bool) -> None:
    """The first path component is a registry host when it has a dot, a port or is localhost."""
    assert names_registry(image) is expected
