"""coordinator.images without Docker: which references name a registry (pulled on the host
before shipping), and when a host is asked whether it has an image."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from convoy.coordinator.sources import images
from convoy.coordinator.sources.images import ImageShipper, names_registry


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


class _Host:
    """The one AgentClient call a host that has the image answers."""

    def __init__(self) -> None:
        self.asked = 0

    async def has_image(self, image: str, image_id: str) -> bool:
        self.asked += 1
        return True


def test_a_host_never_checked_is_checked_even_just_after_boot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The monotonic clock starts near 0 at boot: an image never ensured on a host must not
    look ensured 'less than RECHECK_S ago' then."""
    monkeypatch.setattr(images.time, "monotonic", lambda: 5.0)
    shipper = ImageShipper()
    monkeypatch.setattr(shipper, "local_id", lambda image: "sha256:abc")
    host = _Host()
    client: Any = host
    asyncio.run(shipper.ensure("h1", client, "convoy/busybox:1"))
    assert host.asked == 1
    asyncio.run(shipper.ensure("h1", client, "convoy/busybox:1"))
    assert host.asked == 1  # ensured a moment ago: not asked again
