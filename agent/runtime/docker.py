"""The agent's container runtime: Docker containers with hardened defaults, found again by label.

Blocking code (the docker SDK); the agent calls it from threads (``asyncio.to_thread``). One
`DockerRuntime` holds one client, which is safe to share between threads.

Output never passes through dockerd: argv is wrapped as
``/bin/sh -c 'exec "$@" >>/.convoy/output.log 2>&1' convoy ARGV...`` with log driver ``none``, so
stdout and stderr land interleaved, in order, in ``logdir/output.log`` on the host, at disk speed,
and survive an agent restart (measured on dockerd 20.10: json-file plus ``docker logs`` is about
100 times slower). The image therefore needs ``/bin/sh``; without it docker-init cannot exec the
wrapper and the run ends with exit code 127 and an empty output.log. A command that is not found
in the image also ends with 127, and then sh's "not found" message is in output.log.

A restarted agent rebuilds its `ContainerHandle`s with `DockerRuntime.recover` from the labels
``convoy.agent``, ``convoy.attempt``, ... that `start` puts on every container.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.types import DriverConfig, LogConfig, Mount

from convoy.errors import DiskFull, RuntimeFailure

from .base import (
    LABEL_PREFIX,
    ContainerExit,
    ContainerHandle,
    ContainerSpec,
    ContainerState,
    container_name,
    handle_from_labels,
    labels_for,
    missing_image_message,
)

OUTPUT_WRAPPER = ("/bin/sh", "-c", 'exec "$@" >>/.convoy/output.log 2>&1', "convoy")
TMPFS_MAX_BYTES = 1 << 30
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_docker_time(text: str) -> float:
    """RFC 3339 with nanoseconds (docker's format) to unix seconds; docker's zero time is 0.0."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, frac, zone = m.groups()
    moment = datetime.fromisoformat(base + zone)
    if moment.year <= 1:
        return 0.0
    return moment.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)


def _explain(err: Exception) -> str:
    return str(getattr(err, "explanation", None) or err)


class DockerRuntime:
    """Runs convoy's containers on one Docker engine."""

    # Each long-poll `wait` request lasts at most this long; then it is simply asked again, so an
    # HTTP read timeout never ends a long run's wait.
    wait_poll_seconds: float = 60.0
    engine_outage_seconds: float = 300.0

    def __init__(self, base_url: str | None = None, timeout: float = 120.0) -> None:
        # Every waiting thread holds a connection: keep more than docker's default 10 pooled.
        try:
            if base_url is None:
                self.client = docker.from_env(timeout=timeout, max_pool_size=128)
            else:
                self.client = docker.DockerClient(
                    base_url=base_url, timeout=timeout, max_pool_size=128
                )
        except docker.errors.DockerException as e:
            where = base_url or "DOCKER_HOST or the default socket"
            raise RuntimeFailure(f"no Docker engine answers at {where}: {e}") from e
        self.api = self.client.api

    def version(self) -> str:
        return str(self.client.version()["Version"])

    def image_id(self, image: str) -> str:
        try:
            return str(self.api.inspect_image(image)["Id"])
        except docker.errors.ImageNotFound as e:
            raise RuntimeFailure(missing_image_message(image)) from e

    def start(self, spec: ContainerSpec) -> ContainerHandle:
        """Create and start the attempt's container; if it already exists, return (and if it
        was only created, start) that one, so a restarted agent can repeat a start safely."""
        workdir, logdir = spec.workdir.resolve(), spec.logdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        logdir.mkdir(parents=True, exist_ok=True)
        (logdir / "output.log").touch()  # readers can open it before the container writes
        name = container_name(spec.attempt_id)
        env = dict(spec.env)
        env.setdefault("HOME", "/tmp")
        tmpfs_size = min(spec.memory_bytes, TMPFS_MAX_BYTES)
        try:
            # The low-level API: the high-level create inspects the new container once more,
            # a round trip to the engine per run that nothing here needs.
            mounts = []
            if spec.work_overlay is not None:
                lower, upper, scratch = spec.work_overlay
                opts = f"lowerdir={lower},upperdir={upper},workdir={scratch}"
                mounts.append(Mount("/work", None, type="volume", driver_config=DriverConfig(
                    "local", {"type": "overlay", "device": "overlay", "o": opts}
                )))  # fmt: skip
            work_bind = {} if mounts else {str(workdir): {"bind": "/work", "mode": "rw"}}
            host_config = self.api.create_host_config(
                mounts=mounts,
                binds={
                    **work_bind,
                    str(logdir): {"bind": "/.convoy", "mode": "rw"},
                    **{
                        host: {"bind": inside, "mode": "ro"}
                        for inside, host in spec.read_only_mounts
                    },
                },
                network_mode=spec.network,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=spec.pids_limit,
                nano_cpus=int(spec.cpus * 1e9),
                mem_limit=spec.memory_bytes,
                memswap_limit=spec.memory_bytes,
                read_only=spec.read_only_root,
                tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={tmpfs_size}"},
                init=True,
                log_config=LogConfig(type=LogConfig.types.NONE),
            )
            created = self.api.create_container(
                spec.image,
                entrypoint=list(OUTPUT_WRAPPER),
                command=list(spec.argv),
                name=name,
                labels=labels_for(spec),
                environment=env,
                user=spec.user or f"{os.getuid()}:{os.getgid()}",
                working_dir="/work",
                volumes=["/work", "/.convoy", *(inside for inside, _ in spec.read_only_mounts)],
                host_config=host_config,
                detach=True,
            )
            container_id = str(created["Id"])
        except docker.errors.ImageNotFound as e:
            raise RuntimeFailure(missing_image_message(spec.image)) from e
        except docker.errors.APIError as e:
            if e.status_code == 409:  # the name is taken: this attempt was created before
                return self._adopt(name, spec)
            raise start_failure(f"cannot create container {name}: {_explain(e)}") from e
        except requests.exceptions.RequestException as e:
            raise start_failure(f"cannot create container {name}: {_explain(e)}") from e
        try:
            self.api.start(container_id)
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            self.remove(handle_from_labels(container_id, {}))  # no half-made container stays behind
            raise start_failure(f"cannot start container {name}: {_explain(e)}") from e
        return handle_from_labels(container_id, labels_for(spec))

    def _adopt(self, name: str, spec: ContainerSpec) -> ContainerHandle:
        try:
            info = self.api.inspect_container(name)
        except docker.errors.APIError as e:
            raise RuntimeFailure(f"container {name}: {_explain(e)}") from e
        handle = handle_from_labels(info["Id"], info["Config"].get("Labels"))
        if handle.labels.get(f"{LABEL_PREFIX}attempt") != spec.attempt_id:
            raise RuntimeFailure(f"container {name} exists and is not attempt {spec.attempt_id}")
        if info["State"]["Status"] == "created":
            try:
                self.api.start(handle.container_id)
            except docker.errors.APIError as e:
                self.remove(handle)
                raise start_failure(f"cannot start container {name}: {_explain(e)}") from e
        return handle

    def wait(self, handle: ContainerHandle) -> ContainerExit:
        """Block until the container has ended, however long that takes.

        Rides out HTTP read timeouts (the long poll is simply asked again) and a dockerd restart
        of up to `engine_outage_seconds`; raises RuntimeFailure beyond that.
        """
        down_since: float | None = None
        while True:
            try:
                self.api.wait(handle.container_id, timeout=self.wait_poll_seconds)
                break
            except docker.errors.NotFound as e:
                # Before RequestException, which it is too (an HTTPError): a gone container
                # is no engine outage to wait out.
                raise RuntimeFailure(f"container {handle.container_id[:12]} is gone") from e
            except requests.exceptions.RequestException as e:
                if _is_read_timeout(e):
                    down_since = None
                    continue
                now = time.monotonic()
                down_since = down_since or now
                if now - down_since > self.engine_outage_seconds:
                    raise RuntimeFailure(f"the Docker engine does not answer: {e}") from e
                time.sleep(1.0)
        state = self.state(handle)
        if state.exit is None:
            raise RuntimeFailure(
                f"container {handle.container_id[:12]} is {state.status!r}, not ended"
            )
        return state.exit

    def stop(self, handle: ContainerHandle, grace_seconds: float) -> None:
        """SIGTERM (forwarded by docker-init to the command), SIGKILL after the grace period."""
        grace = max(0, math.ceil(grace_seconds))  # docker takes whole seconds
        try:
            self.api.stop(handle.container_id, timeout=grace)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            raise RuntimeFailure(
                f"cannot stop container {handle.container_id[:12]}: {_explain(e)}"
            ) from e

    def remove(self, handle: ContainerHandle) -> None:
        try:
            self.api.remove_container(handle.container_id, force=True, v=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            if e.status_code == 409 and "in progress" in _explain(e):
                return  # someone else is removing it already
            raise RuntimeFailure(
                f"cannot remove container {handle.container_id[:12]}: {_explain(e)}"
            ) from e

    def has_image(self, image: str) -> str:
        """The image's id on this engine, or "" when it has no such image."""
        try:
            return str(self.api.inspect_image(image)["Id"])
        except docker.errors.ImageNotFound:
            return ""

    def pull_image(self, image: str) -> str:
        """`docker pull`; the image's id. RuntimeFailure with the engine's words on failure."""
        repository, tag = docker.utils.parse_repository_tag(image)
        try:
            self.api.pull(repository, tag=tag or "latest")
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            raise RuntimeFailure(f"cannot pull {image}: {_explain(e)}") from e
        return self.has_image(image)

    def load_image(self, chunks: Iterator[bytes]) -> list[str]:
        """`docker load` of a `docker save` tar stream; the names of the images loaded."""
        loaded: list[str] = []
        try:
            for line in self.api.load_image(chunks):
                text = str(line.get("stream", "")) if isinstance(line, dict) else str(line)
                if "Loaded image" in text:
                    loaded.append(text.split(":", 1)[1].strip())
        except docker.errors.APIError as e:
            raise RuntimeFailure(f"cannot load image: {_explain(e)}") from e
        return loaded

    def state(self, handle: ContainerHandle) -> ContainerState:
        try:
            info = self.api.inspect_container(handle.container_id)
        except docker.errors.NotFound as e:
            raise RuntimeFailure(f"container {handle.container_id[:12]} is gone") from e
        return _state(info)

    def recover(self, agent_id: str) -> list[ContainerHandle]:
        """Every container of this agent, running or not, oldest first."""
        found = self.api.containers(
            all=True,
            filters={"label": [f"{LABEL_PREFIX}managed=1", f"{LABEL_PREFIX}agent={agent_id}"]},
        )
        found.reverse()  # docker lists newest first; Created has whole seconds only
        found.sort(key=lambda c: c.get("Created", 0))
        return [handle_from_labels(c["Id"], c.get("Labels")) for c in found]


def start_failure(message: str) -> RuntimeFailure:
    """DiskFull when the engine's words say the disk is full (ENOSPC: its layers, the
    container's folder or an overlay volume could not be written), else RuntimeFailure."""
    if "no space left on device" in message.lower():
        return DiskFull(message)
    return RuntimeFailure(message)


def _is_read_timeout(err: requests.exceptions.RequestException) -> bool:
    # Over a unix socket the SDK reports a read timeout as a ConnectionError wrapping urllib3's
    # ReadTimeoutError, not as requests' ReadTimeout.
    if isinstance(err, requests.exceptions.ReadTimeout):
        return True
    return bool(err.args) and isinstance(err.args[0], urllib3.exceptions.ReadTimeoutError)


def _state(info: dict[str, Any]) -> ContainerState:
    s = info["State"]
    exit_ = None
    if not s["Running"] and s["Status"] in ("exited", "dead"):
        started = parse_docker_time(s["StartedAt"])
        # dockerd records StartedAt once the start call returns, FinishedAt from the exit
        # event: a process that ends at once can have finished "before" it started.
        ended = max(parse_docker_time(s["FinishedAt"]), started)
        exit_ = ContainerExit(
            exit_code=int(s["ExitCode"]),
            started_at=started,
            ended_at=ended,
            oom_killed=bool(s["OOMKilled"]),
            image_id=str(info["Image"]),
        )
    return ContainerState(status=str(s["Status"]), running=bool(s["Running"]), exit=exit_)
