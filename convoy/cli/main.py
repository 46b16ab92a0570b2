"""convoy: run experiments across hosts, in containers.

  convoy run FILE            submit an experiment, stream its output, summarise (exit 0/1/2)
  convoy up                  run the coordinator and the local agent in the foreground
  convoy down [--cancel]     stop the background coordinator and local agent
  convoy runs [--json]       list runs
  convoy logs RUN [-f]       print (and follow) a run's output
  convoy cancel ID           cancel a run, or every unfinished run of a submission
  convoy rerun SUBMISSION    run a submission's failed runs again (same revision)
  convoy results EXP         an experiment's runs with their parameters and metrics; --plot
  convoy fetch SUBMISSION    copy a submission's results folder from the coordinator
  convoy watch FILE          rerun on every save, with the new runs' output
  convoy tui                 the terminal UI: live runs, logs and allocations
  convoy hosts [--json]      list hosts with capacity and allocations
  convoy hosts add|remove|trust NAME   add or remove a host (live); record its SSH key
  convoy token create|revoke|list      tokens for `convoy up --listen` (TLS over TCP)

State lives in $CONVOY_HOME (default: $XDG_STATE_HOME/convoy, i.e. ~/.local/state/convoy).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from convoy import __version__
from convoy.client import AsyncClient, Run
from convoy.client.channel import resolve_target
from convoy.errors import ConvoyError, CoordinatorUnavailable, UsageError
from convoy.paths import checked_home, default_home
from convoy.procs import stop_by_pidfile
from convoy.runjson import run_fields
from convoy.states import ACTIVE, RunState

from . import fetch, hosts, tokens
from .render import runs_table
from .results import FORMATS
from .safetext import inert

_T = TypeVar("_T")


def _whole(least: int, most: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not least <= n <= most:
            raise argparse.ArgumentTypeError(f"{n}: {what}")
        return n

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convoy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"convoy {__version__}")
    p.add_argument("--home", type=Path, help="state folder (default: $CONVOY_HOME or XDG state)")
    p.add_argument("--coordinator", metavar="TARGET",
                   help="the coordinator to call: grpcs://HOST:PORT (one started with --listen; "
                   "the token is $CONVOY_TOKEN) or unix:PATH (default: $CONVOY_COORDINATOR, "
                   "else this machine's)")  # fmt: skip
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("run", help="submit an experiment and follow it to the end",
                       description="Submit the experiment in FILE, start the coordinator and "
                       "local agent if none runs, stream every run's output prefixed with its "
                       "name, then print a summary. Exit status: 0 if every run succeeded, 1 if "
                       "any did not, 2 on bad input (nothing is submitted).")  # fmt: skip
    r.add_argument("file", metavar="FILE", help="the experiment file (YAML)")
    r.add_argument("--results", metavar="DIR",
                   help="results folder (default: convoy-results/ beside FILE)")  # fmt: skip
    r.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    r.add_argument("--detach", action="store_true", help="submit and return at once")
    r.add_argument("-q", "--quiet", action="store_true", help="do not print the runs' output")
    r.add_argument("--force", action="store_true",
                   help="run every run, even those an earlier run of the same key already did "
                   "(by default those are not run again: their results are linked)")  # fmt: skip
    r.add_argument(
        "--indexes",
        action="append",
        default=[],
        metavar="LIST",
        help="only these runs of the matrix, by index: 0,3,5-9 (repeatable)",
    )
    r.add_argument("--only", action="append", default=[], metavar="NAME=VALUE",
                   help="only the runs whose parameter NAME is VALUE (repeatable: values of one "
                   "name are any of, different names all of)")  # fmt: skip

    u = sub.add_parser(
        "up",
        help="run the coordinator and local agent in the foreground",
        description="Run the coordinator in the foreground (Ctrl-C stops it; runs keep running "
        "in the local agent, which is started if none answers).",
    )
    u.add_argument("--cpus", type=float, help="cpus the local agent offers (default: all)")
    u.add_argument("--memory", help="memory the local agent offers, e.g. 8GiB (default: all)")
    u.add_argument("--detach", action="store_true", help="start in the background and return")
    u.add_argument("--hosts", type=Path, metavar="FILE",
                   help="hosts file (default: $CONVOY_HOME/hosts.yaml when it exists)")  # fmt: skip
    u.add_argument("--no-local", dest="local", action="store_false",
                   help="run nothing on this machine, only on the hosts file's")  # fmt: skip
    u.add_argument("--host-grace", type=_seconds, metavar="SECONDS", default=None,
                   help="how long a host may stop answering before its runs are given up and "
                   "retried elsewhere (default 60)")  # fmt: skip
    u.add_argument("--listen", metavar="HOST:PORT",
                   help="also serve the API over TLS on this TCP address (e.g. 0.0.0.0:7443) "
                   "to holders of a token (`convoy token create`); never plaintext")  # fmt: skip
    u.add_argument("--cert", type=Path, metavar="FILE",
                   help="with --listen: the certificate (PEM) to serve, self-signed or issued "
                   "by a CA (then followed by its intermediates) (default: a self-signed one "
                   "made once, in $CONVOY_HOME/tls)")  # fmt: skip
    u.add_argument("--key", type=Path, metavar="FILE",
                   help="with --listen and --cert: its private key (PEM)")  # fmt: skip

    d = sub.add_parser("down", help="stop the background coordinator and local agent",
                       description="Stop the coordinator and the local agent of this "
                       "CONVOY_HOME. Unfinished runs are not lost: containers keep running, "
                       "queued runs stay queued, and the next `convoy up` picks them up "
                       "again. With --cancel, they are cancelled first.")  # fmt: skip
    d.add_argument("--cancel", action="store_true",
                   help="cancel every unfinished run, and wait for them to end, first")  # fmt: skip
    d.add_argument("--grace", type=float, default=10.0,
                   help="with --cancel: seconds before SIGKILL (10)")  # fmt: skip

    rs = sub.add_parser("runs", help="list runs", description="List runs, oldest first.")
    rs.add_argument("--json", action="store_true", help="a JSON array with run.json's fields")
    rs.add_argument("--submission", "-s", default="", help="only this submission's runs")
    rs.add_argument("--experiment", "-e", default="", metavar="NAME",
                    help="only this experiment's runs")  # fmt: skip
    rs.add_argument("--last", type=_whole(1, 2**31 - 1, "--last"), default=0, metavar="N",
                    help="only the last N runs (by submission, then index)")  # fmt: skip
    rs.add_argument("--state", action="append", default=[],
                    help="only runs in this state; 'active': syncing, building, starting or "
                    "running (as the TUI's filter takes it)")  # fmt: skip

    lg = sub.add_parser("logs", help="print a run's output",
                        description="Print a run's output (its latest attempt's).")  # fmt: skip
    lg.add_argument("run", metavar="RUN")
    lg.add_argument("-f", "--follow", action="store_true",
                    help="follow until the run ends, through its retries")  # fmt: skip
    offsets = _whole(0, 2**63 - 1, "an offset is from 0 to 2**63 - 1")
    lg.add_argument("--offset", type=offsets, default=0,
                    help="start at this byte offset (of the first attempt printed)")  # fmt: skip
    attempts = _whole(1, 2**31 - 1, "attempts count from 1, up to 2147483647")
    lg.add_argument("--attempt", type=attempts, default=0, metavar="N",
                    help="only attempt N's output (1 is the first; each retry, or placing the "
                    "run again, is the next), while its host or the results keep it; with -f, "
                    "wait for it if it is still to come and follow it until it ends")  # fmt: skip

    c = sub.add_parser("cancel", help="cancel a run or a submission",
                       description="Cancel a run, or every unfinished run of a submission: "
                       "queued runs never start; running ones get SIGTERM, then SIGKILL after "
                       "the grace period. Their partial results are kept.")  # fmt: skip
    c.add_argument("id", metavar="RUN|SUBMISSION")
    c.add_argument("--grace", type=float, default=10.0, help="seconds before SIGKILL (10)")

    rr = sub.add_parser("rerun", help="run a submission's failed runs again",
                        description="Run the failed, lost and cancelled runs of a submission "
                        "again, as a new submission of the same revision (the sources as "
                        "they were then) and results folder.")  # fmt: skip
    rr.add_argument("submission", metavar="SUBMISSION")
    rr.add_argument("--state", action="append", default=[], metavar="STATE",
                    help="rerun runs that ended in STATE (repeatable; default: failed, lost "
                    "and cancelled)")  # fmt: skip

    w = sub.add_parser("watch", help="rerun an experiment on every save",
                       description="Submit the experiment, then submit it again each time its "
                       "sources change (after a quiet period), printing each rerun's revision, "
                       "what changed, and the new runs' output. The superseded runs are "
                       "cancelled (watch: {on_change: finish} lets them end). Ctrl-C stops "
                       "watching; the runs submitted last go on.")  # fmt: skip
    w.add_argument("file", metavar="FILE", help="the experiment file (YAML)")
    w.add_argument("--results", metavar="DIR", help="results folder (default: convoy-results/ "
                   "beside FILE)")  # fmt: skip
    w.add_argument(
        "--debounce",
        type=float,
        metavar="S",
        help="seconds of quiet before a rerun (default: watch.debounce, or 0.05)",
    )
    w.add_argument("-q", "--quiet", action="store_true", help="do not print the runs' output")

    wy = sub.add_parser("why", help="why a run ran, or did not",
                        description="Say why RUN ran (which parts of its key changed since the "
                        "latest earlier run of its parameter values, the sources' changed files "
                        "named) or did not (whose result it reuses), as decided when it was "
                        "submitted.")  # fmt: skip
    wy.add_argument("run", metavar="RUN")
    wy.add_argument("--json", action="store_true", help="the answer as a JSON object")

    rt = sub.add_parser("results", help="an experiment's runs, parameters and metrics",
                        description="Print one table of an experiment's runs across its "
                        "submissions: each run's parameters, the metrics its experiment file "
                        "declares (metrics:), state, duration, host, revision and reason. Or, "
                        "with --plot, draw a metric against a parameter.")  # fmt: skip
    rt.add_argument("experiment", metavar="EXPERIMENT", help="the experiment's name")
    rt.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default), csv, json, or parquet (needs pyarrow, and -o)",
    )
    rt.add_argument("--latest", action="store_true",
                    help="only the latest run of each parameter assignment: its run in the "
                    "latest submission that has one, whatever its state")  # fmt: skip
    rt.add_argument("--where", action="append", default=[], metavar="NAME=VALUE",
                    help="only runs whose parameter NAME is VALUE, as the experiment file "
                    "writes it (repeatable: values of one name are any of, different names "
                    "all of)")  # fmt: skip
    rt.add_argument("-o", "--output", type=Path, metavar="FILE",
                    help="write to FILE rather than stdout (the image, with --plot)")  # fmt: skip
    rt.add_argument("--plot", metavar="METRIC",
                    help="draw METRIC's mean and 95%% interval (Student's t) against --by's "
                    "values, over the latest run of each parameter assignment that succeeded; "
                    "needs matplotlib and -o")  # fmt: skip
    rt.add_argument("--by", metavar="PARAM", help="with --plot: the parameter on the x axis")
    rt.add_argument("--hue", metavar="PARAM",
                    help="with --plot: a line per value of this parameter")  # fmt: skip

    sub.add_parser("tui", help="the terminal UI: live runs, logs and allocations",
                   description="Open the terminal UI on the coordinator (it must be running: "
                   "`convoy up`, or any `convoy run`).")  # fmt: skip

    hosts.add_parser(sub)
    tokens.add_parser(sub)
    fetch.add_parser(sub)
    return p


async def _runs(home: Path, ns: argparse.Namespace) -> int:
    states = [
        s
        for given in ns.state
        for s in (sorted(a.value for a in ACTIVE) if given == "active" else [given])
    ]
    try:
        client = await AsyncClient.connect(home)
    except CoordinatorUnavailable:  # the history is in its store: read it there
        if resolve_target(None):  # not this machine's store: say the coordinator is away
            raise
        runs = _stored_runs(home, ns.submission, states, ns.last, ns.experiment)
    else:
        async with client:
            runs = await client.runs(ns.submission, states=states, experiment=ns.experiment,
                                     last=ns.last)  # fmt: skip
    if ns.json:
        print(json.dumps([run_fields(r) for r in runs], indent=2))
    else:
        print(runs_table(runs) if runs else "no runs")
    return 0


def _stored_runs(
    home: Path, submission: str, states: list[str], last: int, experiment: str
) -> list[Run]:
    """ListRuns answered from the coordinator's store, while no coordinator runs (said on
    stderr: what was running when it stopped is shown as it was then)."""
    import sqlite3

    from convoy.client.convert import run_of
    from convoy.coordinator.runs.store import STATE_DB, stored_runs
    from convoy.coordinator.wire import run_to_pb

    path = home / STATE_DB
    try:
        wanted = [RunState(s) for s in states]
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        runs = stored_runs(path, submission, wanted, last, experiment, bool(last))
    except sqlite3.Error as e:
        raise UsageError(f"no coordinator runs, and its store {path} cannot be read: {e}"
                         ) from None  # fmt: skip
    print(f"convoy: no coordinator runs ({home}); the runs as its store last had them",
          file=sys.stderr)  # fmt: skip
    return [run_of(run_to_pb(r)) for r in runs]


async def _results(home: Path, ns: argparse.Namespace) -> int:
    from . import results

    plotting = ns.plot is not None
    if plotting and (ns.by is None or ns.output is None):
        raise UsageError("--plot METRIC needs --by PARAM (the x axis) and -o FILE (the image)")
    if not plotting and (ns.by is not None or ns.hue is not None):
        raise UsageError("--by and --hue go with --plot METRIC")
    if plotting and ns.format != "table":
        raise UsageError("--plot draws an image: --format does not go with it")
    if ns.format == "parquet" and ns.output is None:
        raise UsageError("--format parquet needs -o FILE: Parquet is no text for a terminal")
    # A plot counts each parameter assignment once: its latest run (as --latest).
    res = await results.fetch(home, ns.experiment, ns.latest or plotting, ns.where)
    if plotting:
        from . import plot

        drawn, left = plot.lines(res, ns.plot, ns.by, ns.hue)
        plot.save(plot.figure(drawn, res.experiment, ns.plot, ns.by, ns.hue), ns.output)
        for said in left:
            print(f"convoy: left out of the plot: {said}", file=sys.stderr)
        points = sum(len(line.points) for line in drawn)
        print(f"wrote {ns.output}: {ns.plot} by {ns.by}, {points} points")
        return 0
    try:
        if ns.format == "parquet":
            results.write_parquet(res, ns.output)
            return 0
        out = ns.output.open("w") if ns.output is not None else sys.stdout
    except OSError as e:
        raise UsageError(f"-o {ns.output}: cannot write it: {e.strerror or e}") from None
    try:
        if ns.format == "csv":
            out.write(results.csv_text(res))
        elif ns.format == "json":
            out.write(results.json_text(res) + "\n")
        else:
            out.write(results.table_text(res, safe=out.isatty()) + "\n")
            for note in results.missing_notes(res):
                print(f"convoy: {note}", file=sys.stderr)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


async def _why(home: Path, ns: argparse.Namespace) -> int:
    async with await AsyncClient.connect(home) as client:
        w = await client.why(ns.run)
    if ns.json:
        print(json.dumps(dataclasses.asdict(w), indent=2))
    else:
        print(inert(w.text) if sys.stdout.isatty() else w.text)
    return 0


async def _logs(home: Path, ns: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    async with await AsyncClient.connect(home) as client:
        attempt, ended = 0, True  # ended: the output so far ends a line
        stream = client.logs(ns.run, offset=ns.offset, follow=ns.follow, attempt=ns.attempt)
        async for chunk in stream:
            if attempt and chunk.attempt != attempt:  # a retry's output follows: say so aside
                out.write(b"" if ended else b"\n")
                out.flush()
                print(f"convoy: {ns.run}: attempt {chunk.attempt}", file=sys.stderr, flush=True)
            attempt = chunk.attempt
            if chunk.data:
                ended = chunk.data.endswith(b"\n")
            out.write(chunk.data)
            if ns.follow:
                out.flush()
    out.flush()
    return 0


async def _cancel(home: Path, ns: argparse.Namespace) -> int:
    async with await AsyncClient.connect(home) as client:
        cancelled = await client.cancel(ns.id, ns.grace)
    if cancelled:
        shown = " ".join(cancelled[:SHOW_IDS])
        more = f" (and {len(cancelled) - SHOW_IDS} more)" if len(cancelled) > SHOW_IDS else ""
        print(f"cancelling {len(cancelled)} run(s): {shown}{more}")
    else:
        print(f"{ns.id}: nothing to cancel (already finished)")
    return 0


async def _rerun(home: Path, ns: argparse.Namespace) -> int:
    async with await AsyncClient.connect(home) as client:
        resp = await client.rerun(ns.submission, ns.state)
    print(f"submitted {resp.submission_id}: {' '.join(r.id for r in resp.runs)}")
    return 0


def _up(home: Path, ns: argparse.Namespace) -> int:
    from convoy.client.local import start_detached

    if ns.detach:
        try:
            asyncio.run(_probe(home))
            print(f"a coordinator already runs for {home}")
            return 0
        except CoordinatorUnavailable:
            pass
        pid = start_detached(home, _up_args(ns))
        print(f"coordinator started (pid {pid}); log: {home / 'coordinator.log'}")
        if ns.listen is not None:
            from convoy.certs import fingerprint

            cert = ns.cert or home / "tls" / "cert.pem"
            print(f"listening on {ns.listen} over TLS; certificate SHA256:"
                  f"{fingerprint(cert.read_bytes())}")  # fmt: skip
        return 0
    from convoy.coordinator.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # a line per channel otherwise
    asyncio.run(serve(home, ns.cpus, ns.memory, hosts_file=ns.hosts, local=ns.local,
                      grace_s=ns.host_grace, listen=ns.listen, cert=ns.cert,
                      key=ns.key))  # fmt: skip
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number), got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def _up_args(ns: argparse.Namespace) -> list[str]:
    args = []
    if ns.cpus is not None:
        args += ["--cpus", str(ns.cpus)]
    if ns.memory is not None:
        args += ["--memory", ns.memory]
    if ns.hosts is not None:
        args += ["--hosts", str(ns.hosts.absolute())]
    if not ns.local:
        args.append("--no-local")
    if ns.host_grace is not None:
        args += ["--host-grace", str(ns.host_grace)]
    if ns.listen is not None:
        args += ["--listen", ns.listen]
    for opt, path in (("--cert", ns.cert), ("--key", ns.key)):
        if path is not None:
            args += [opt, str(path.absolute())]
    return args


async def _probe(home: Path) -> None:
    client = await AsyncClient.connect(home, timeout=1.0, coordinator="")  # this machine's
    await client.close()


async def _unfinished(home: Path, cancel: bool, grace: float) -> list[str] | None:
    """The runs that have not ended; None when no coordinator answers. With `cancel`, each
    is cancelled first, and those still unfinished after grace + 15 s are returned; the SSH
    hosts' agents are then stopped (each unless a run is still in flight there)."""
    try:
        client = await AsyncClient.connect(home, coordinator="")  # this machine's: it stops
    except CoordinatorUnavailable:
        return None
    async with client:
        unended = [s.value for s in RunState if not s.terminal]

        async def left(among: set[str] | None = None) -> list[Run]:
            runs = await client.runs(states=unended)
            return [r for r in runs if among is None or r.id in among]

        runs = await left()
        if not cancel:
            return [r.id for r in runs]
        if runs:
            for submission in sorted({r.submission_id for r in runs}):
                await client.cancel(submission, grace)
            ids = {r.id for r in runs}
            deadline = time.monotonic() + grace + 15
            while (runs := await left(ids)) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            print(f"cancelled {len(ids) - len(runs)} unfinished run(s)")
        for host in await client.stop_agents():
            print(f"{host.host}: {host.said}")
        return [r.id for r in runs]


def _down(home: Path, ns: argparse.Namespace) -> int:
    unfinished = _run_async(_unfinished(home, ns.cancel, ns.grace))
    stopped = []
    # The coordinator first, and wholly (it may be writing a large sweep's results.csv):
    # stopping the agent under a coordinator still going would have it start another.
    pid = stop_by_pidfile(home / "coordinator.pid", COORDINATOR_STOP_S, kill=True)
    if pid is not None:
        stopped.append(f"coordinator (pid {pid})")
    pid = stop_by_pidfile(home / "agent" / "agent.pid")
    if pid is not None:
        stopped.append(f"agent (pid {pid})")
    print("stopped " + ", ".join(stopped) if stopped else f"nothing runs for {home}")
    if unfinished is None and ns.cancel and stopped:
        print("no coordinator answered, so nothing was cancelled: containers of runs in "
              "flight keep running until the next `convoy up`")  # fmt: skip
    if unfinished:
        what = "did not end in time" if ns.cancel else "are unfinished"
        print(f"{len(unfinished)} run(s) {what}: their containers keep running and queued ones "
              "stay queued; the next `convoy up` picks them up"
              + ("" if ns.cancel else " (`convoy down --cancel` cancels them first)"))  # fmt: skip
    return 0


def _run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a command's coroutine (the client turns failed calls into convoy's errors)."""
    return asyncio.run(coro)


COORDINATOR_STOP_S = 60.0  # how long `convoy down` waits for the coordinator, then kills it
SHOW_IDS = 20  # run ids named in a one-line report; a sweep's hundred thousand are not


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    home = (ns.home or default_home()).absolute()
    if ns.coordinator is not None:
        # The one place every command's connect() reads it from, as from the environment
        # (ours only: it goes to the processes we start, which connect the same way).
        os.environ["CONVOY_COORDINATOR"] = ns.coordinator
    try:
        checked_home(home, create=False)  # made by what writes there (`up`, a coordinator)
        if ns.command == "run":
            from .run import RunOptions, run_experiment

            opts = RunOptions(ns.results, ns.priority, ns.detach, ns.quiet, ns.force,
                              tuple(ns.indexes), tuple(ns.only))  # fmt: skip
            return _run_async(run_experiment(home, ns.file, opts))
        if ns.command == "up":
            return _up(home, ns)
        if ns.command == "down":
            return _down(home, ns)
        if ns.command == "hosts":
            return hosts.main(home, ns, _run_async)
        if ns.command == "token":
            return tokens.main(home, ns)
        if ns.command == "fetch":
            return fetch.main(home, ns, _run_async)
        if ns.command == "watch":
            from .watch import watch_experiment

            return _run_async(watch_experiment(home, ns.file, ns.results, ns.quiet, ns.debounce))
        if ns.command == "tui":
            from convoy.tui.app import run_tui

            return run_tui(home)
        if ns.command == "results":
            return _run_async(_results(home, ns))
        handlers = {"runs": _runs, "logs": _logs, "cancel": _cancel, "rerun": _rerun,
                    "why": _why}  # fmt: skip
        return _run_async(handlers[ns.command](home, ns))
    except ConvoyError as e:
        print(f"convoy: {e.render()}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        if ns.command == "run":
            print("\nconvoy: detached; the runs go on (`convoy cancel SUBMISSION` stops them)",
                  file=sys.stderr)  # fmt: skip
        if ns.command == "watch":
            print("\nconvoy: stopped watching; the runs submitted last go on "
                  "(`convoy cancel SUBMISSION` stops them)", file=sys.stderr)  # fmt: skip
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
