"""A run's identity, and whether an earlier run already made its result (memoisation).

A run's key is a hash over what determines its result, part by part, so that `convoy why` can
name the part that changed (docs/how-it-works.md, "Runs already done"):

  sources   the revision of the sources (every file's path, mode and content), less the
            experiment file (what of it matters is in the other parts)
  inputs    the revisions of its input folders
  image     the run image's id on the coordinator's Docker engine (its name, when only the
            hosts have it)
  build     the build step's key (its image's id, the revision, its command); none without one
  command   the command, its parameters substituted
  params    the parameter values (1, 1.0 and true differ)
  env       the environment, its parameters substituted
  network   the network it may use
  outputs   what of its folder it collects

What only decides where and how a run goes (resources, timeout, retries, priority, placement,
limits) is not part of it. Pure: the caller reads earlier runs from the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from convoy.content import hash_bytes
from convoy.states import TERMINAL

PARTS = (
    "sources", "inputs", "image", "build", "command", "params", "env", "network", "outputs",
)  # fmt: skip
DIGEST_HEX = 16  # of each part
ENDED = frozenset(s.value for s in TERMINAL)


def _digest(value: object) -> str:
    return hash_bytes(json.dumps(value, sort_keys=True).encode())[:DIGEST_HEX]


def key_parts(
    *, revision: str, inputs: Mapping[str, str], image_id: str, build_key: str,
    command: str | tuple[str, ...], params: Mapping[str, object], env: Mapping[str, str],
    network: str, outputs: Iterable[str],
) -> dict[str, str]:  # fmt: skip
    """Each part of a run's key, as a short digest (the sources as their revision id)."""
    return {
        "sources": revision,
        "inputs": _digest(dict(inputs)),
        "image": _digest(image_id),
        "build": _digest(build_key),
        "command": _digest(command if isinstance(command, str) else list(command)),
        "params": _digest(dict(params)),
        "env": _digest(dict(env)),
        "network": _digest(network),
        "outputs": _digest(sorted(outputs)),
    }


class KeyMaker:
    """key_parts for the runs of one submission: the parts they share are hashed once, and an
    environment seen before is not hashed again (a sweep of 10^5 runs is keyed in a second)."""

    def __init__(
        self, *, revision: str, inputs: Mapping[str, str], image_id: str, build_key: str,
        network: str, outputs: Iterable[str],
    ) -> None:  # fmt: skip
        self._shared = {
            "sources": revision, "inputs": _digest(dict(inputs)), "image": _digest(image_id),
            "build": _digest(build_key), "network": _digest(network),
            "outputs": _digest(sorted(outputs)),
        }  # fmt: skip
        self._envs: dict[tuple[tuple[str, str], ...], str] = {}

    def parts(
        self, command: str | tuple[str, ...], params: Mapping[str, object], env: Mapping[str, str]
    ) -> dict[str, str]:
        """The same as key_parts with this submission's shared parts."""
        items = tuple(sorted(env.items()))
        env_digest = self._envs.get(items)
        if env_digest is None:
            env_digest = self._envs[items] = _digest(dict(env))
        return {
            **self._shared, "env": env_digest, "params": _digest(dict(params)),
            "command": _digest(command if isinstance(command, str) else list(command)),
        }  # fmt: skip


def run_key(parts: Mapping[str, str]) -> str:
    """The key of a run whose parts are `parts`."""
    return hash_bytes(json.dumps([parts.get(p, "") for p in PARTS]).encode())[:32]


def changed_parts(new: Mapping[str, str], old: Mapping[str, str]) -> list[str]:
    """The parts that differ, in PARTS order."""
    return [p for p in PARTS if new.get(p, "") != old.get(p, "")]


@dataclass(frozen=True)
class Earlier:
    """An earlier run of the same experiment, as memoisation needs it."""

    id: str
    state: str
    key: str
    parts: Mapping[str, str]
    reused_from: str  # the run whose result it is ("": its own)
    has_results: bool  # its results folder is still there


@dataclass(frozen=True)
class Memo:
    """What was decided for a run at submission: run it, or reuse an earlier one's result."""

    reuse: str = ""  # the run whose result this one is ("": it runs)
    compared: str = ""  # the earlier run it was compared with ("": none of its parameters)
    changed: tuple[str, ...] = ()  # the key's parts that differ from `compared`'s
    text: str = ""  # the reason, for people
    forced: bool = False  # submitted with force: run whatever was done before

    def to_json(self) -> str:
        return json.dumps({"reuse": self.reuse, "compared": self.compared,
                           "changed": list(self.changed), "text": self.text,
                           "forced": self.forced})  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Memo | None:
        if not text:
            return None
        d = json.loads(text)
        return cls(d["reuse"], d["compared"], tuple(d["changed"]), d["text"], d["forced"])


class Memory:
    """The earlier runs of one experiment, indexed for deciding a new submission's runs."""

    def __init__(self, earlier: Iterable[Earlier]) -> None:
        # in submission order: a later run replaces an earlier one of the same key or params
        self._done: dict[str, Earlier] = {}  # key -> the latest succeeded run with results
        self._same_key: dict[str, Earlier] = {}  # key -> the latest run of it, however it went
        self._same_params: dict[str, Earlier] = {}  # params digest -> the latest run of them
        for e in earlier:
            if not e.key:  # stored before runs had keys
                continue
            self._same_key[e.key] = e
            self._same_params[e.parts.get("params", "")] = e
            if e.state == "succeeded" and e.has_results:
                self._done[e.key] = e

    def decide(self, parts: Mapping[str, str], force: bool = False, key: str = "") -> Memo:
        """Run or reuse, for a run of these parts (`key`: their run_key, if known)."""
        key = key or run_key(parts)
        done = self._done.get(key)
        if done is not None and not force:
            origin = done.reused_from or done.id
            return Memo(reuse=origin, compared=done.id,
                        text=f"already done: {origin} succeeded with the same key")  # fmt: skip
        if force:
            said = f" ({done.id} succeeded with the same key)" if done is not None else ""
            return Memo(compared=done.id if done else "", text=f"forced{said}", forced=True)
        same = self._same_key.get(key)
        if same is not None:
            if same.state == "succeeded":
                how = "succeeded, but its results folder is gone"
            elif same.state in ENDED:
                how = f"ended {same.state}"
            else:  # only a run that has succeeded is taken as done
                how = f"was still {same.state}"
            return Memo(compared=same.id, text=f"{same.id}, of the same key, {how}")
        before = self._same_params.get(parts.get("params", ""))
        if before is None:
            return Memo(text="no earlier run of these parameter values")
        changed = tuple(changed_parts(parts, before.parts))
        return Memo(compared=before.id, changed=changed,
                    text=f"changed since {before.id}: {', '.join(changed)}")  # fmt: skip
