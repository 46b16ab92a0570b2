"""What convoy runs on a host over SSH before its agent answers: the probe of the host's python
and agent home, the script that finds (or stops) an agent home's processes, and quoting for sh.
The scripts run with the host's python before anything is installed, so they stick to old
syntax."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from convoy.coordinator.hosts.bundle import Runtime

# What the host's python and the agent home are. argv: agent_home, bundle ids to look for,
# modules a pure bundle needs. Prints JSON (see Probe).
PROBE = r"""
import json, os, platform, stat, sys
home = os.path.expanduser("~")
ah = sys.argv[1]
if ah == "~" or ah.startswith("~/"):
    ah = home + ah[1:]
elif not os.path.isabs(ah):
    ah = os.path.join(home, ah)
ah = os.path.normpath(ah)
def read(p):
    try:
        with open(p) as f:
            return f.read().strip()
    except (IOError, OSError):
        return ""
def is_socket(p):
    try:
        return stat.S_ISSOCK(os.stat(p).st_mode)
    except OSError:
        return False
deps = True
for m in json.loads(sys.argv[3]):
    try:
        import importlib.util
        deps = deps and importlib.util.find_spec(m) is not None
    except Exception:
        deps = False
print(json.dumps({
    "home": home, "agent_home": ah, "python": "%d.%d" % sys.version_info[:2],
    "platform": sys.platform, "machine": platform.machine(),
    "installed": [i for i in json.loads(sys.argv[2])
                  if read(os.path.join(ah, "lib", i, "VERSION")) == i],
    "bundle": read(os.path.join(ah, "agent.bundle")),
    "socket": is_socket(os.path.join(ah, "agent.sock")), "deps": deps,
}))
"""

# The agent processes of one agent home: agent.pid if it still names one (a pid is reused, so
# its command line is checked), else a scan of /proc. argv: agent_home, "find" or "stop",
# seconds to wait after SIGTERM before SIGKILL. Prints the pids.
AGENT_PIDS = r"""
import os, signal, sys, time
ah = sys.argv[1].encode()
def ours(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            a = f.read().split(b"\0")
        # "agent": started as `python -m agent` by a build before convoy.agent
        return (b"convoy.agent" in a or b"agent" in a) and a[a.index(b"--home") + 1] == ah
    except (IOError, OSError, ValueError, IndexError):
        return False
try:
    with open(os.path.join(sys.argv[1], "agent.pid")) as f:
        pid = int(f.read().split()[0])
except (IOError, OSError, ValueError, IndexError):
    pid = 0
if not os.path.isdir("/proc"):
    pids = [pid] if pid else []
elif pid and ours(pid):
    pids = [pid]
else:
    pids = [int(d) for d in os.listdir("/proc") if d.isdigit() and ours(int(d))]
if sys.argv[2] == "stop":
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + float(sys.argv[3])
    while time.time() < deadline and any(ours(p) for p in pids):
        time.sleep(0.05)
    for p in pids:
        if ours(p):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
print(" ".join(str(p) for p in pids))
"""


@dataclass(frozen=True)
class Probe:
    """What the host's python told about itself and the agent home."""

    home: str
    agent_home: str  # absolute
    runtime: Runtime
    installed: tuple[str, ...]  # bundle ids present in <agent_home>/lib/
    bundle: str  # the bundle the running agent was started from ("" if unknown)
    socket: bool
    deps: bool  # the python imports the agent's distributions by itself


def quote_path(path: str) -> str:
    """A path quoted for sh, keeping a leading `~/` for the shell to expand."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def in_sh(script: str) -> str:
    """Run `script` with sh whatever the user's login shell is (fish, csh, ...)."""
    return f"sh -c {shlex.quote(script)}"


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
