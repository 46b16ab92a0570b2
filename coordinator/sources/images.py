"""Getting a run's image onto its host before the run is placed there.

Labs without a registry are a primary audience, so the default is to ship the image from the
coordinator's own Docker engine (`docker save`) to the host's (`docker load`), streamed through
the agent over the same SSH connection as everything else, once per host and image digest.
An image whose name starts with a registry (registry.example.org:5000/team/model:1) is pulled
by the host's own engine first; if that fails and the coordinator has the image, it is shipped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

import docker
import docker.errors
import grpc
import requests

from convoy.coordinator.hosts.agents import AgentClient
from convoy.errors import ConvoyError

log = logging.getLogger("convoy.images")


# A tag may be rebuilt on the coordinator; within this many seconds of finding a host ready for
# an image name, runs of that name skip asking the engine for its digest again.
RECHECK_S = 30.0


class ImageError(ConvoyError):
    pass


def names_registry(image: str) -> bool:
    """True for a reference like registry.example.org:5000/team/model:1 or localhost/x (the first
    path component is a host), as docker itself decides; plain names stay local or are shipped."""
    first, sep, _ = image.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


class ImageShipper:
    def __init__(self) -> None:
        self._api: docker.APIClient | None = None
        self._ready: set[tuple[str, str]] = set()  # (host, image id)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._recent: dict[tuple[str, str], float] = {}  # (host, image name) -> when ensured
        self._no_engine = False  # said once

    def _engine(self) -> docker.APIClient:
        if self._api is None:
            self._api = docker.APIClient(timeout=600)
        return self._api

    def local_id(self, image: str) -> str:
        """The image's id on the coordinator's own engine; "" when it has no such image, or
        has no engine that answers (then hosts must have the image themselves: a coordinator
        needs Docker only to ship images)."""
        try:
            return str(self._engine().inspect_image(image)["Id"])
        except docker.errors.ImageNotFound:
            return ""
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            if not self._no_engine:
                log.info("the coordinator's Docker engine does not answer (%s): images are "
                         "not shipped from here", e)  # fmt: skip
            self._no_engine = True
            return ""

    def fresh(self, host: str, image: str) -> bool:
        return time.monotonic() - self._recent.get((host, image), -RECHECK_S) < RECHECK_S

    async def ensure(self, host: str, client: AgentClient, image: str) -> None:
        """Return once `host` has `image` (the coordinator's digest of it, when it has one)."""
        if self.fresh(host, image):  # a sweep starts many runs of one image
            return
        image_id = await asyncio.to_thread(self.local_id, image)
        key = (host, image_id or image)
        if key in self._ready:
            self._recent[(host, image)] = time.monotonic()
            return
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key in self._ready:
                return
            if await client.has_image(image, image_id):
                self._ready.add(key)
                self._recent[(host, image)] = time.monotonic()
                return
            pull_error = ""
            if names_registry(image):  # the host's engine may reach the registry itself
                try:
                    if await client.pull_image(image):
                        self._ready.add(key)
                        return
                except grpc.aio.AioRpcError as e:
                    if e.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    pull_error = f"; pulling it on {host} failed: {e.details()}"
                    log.info("host %s could not pull %s; shipping it", host, image)
            if not image_id:
                raise ImageError(
                    f"image {image!r} is neither on host {host} nor on the coordinator "
                    f"(build it there, e.g. bash images/build.sh){pull_error}"
                )
            log.info("shipping image %s (%s) to %s", image, image_id[:19], host)
            await client.load_image(self._save(image))
            if not await client.has_image(image, image_id):
                raise ImageError(f"host {host} did not end up with image {image!r} after loading")
            self._ready.add(key)
            self._recent[(host, image)] = time.monotonic()

    async def _save(self, image: str) -> AsyncIterator[bytes]:
        """`docker save` of one image as an async stream (the SDK's generator runs in a thread)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=16)

        def produce() -> None:
            try:
                chunks: Iterator[bytes] = self._engine().get_image(image, chunk_size=1 << 20)
                for chunk in chunks:
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()
            except BaseException as e:  # handed to the consumer
                asyncio.run_coroutine_threadsafe(queue.put(e), loop).result()

        threading.Thread(target=produce, name=f"save {image}", daemon=True).start()
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise ImageError(f"docker save {image}: {item}") from item
            yield item
