#!/usr/bin/env python3
"""M/M/c queue: a discrete-event simulation (standard library only).

Customers arrive as a Poisson process (rate --arrival-rate), wait in one FIFO queue, and are
served by --servers identical servers with exponential service times (rate --service-rate each).
The simulation measures, over --customers served customers (after a warm-up):

- mean wait in the queue (Wq) with a 95% confidence interval by batch means,
- mean time in the system (W), wait percentiles,
- time-average number waiting (Lq) and in the system (L),
- server utilisation,

and compares them with the exact M/M/c (Erlang C) values when the queue is stable.
It prints progress lines such as "progress (40%)" and a summary, and writes
results/summary.json relative to the working directory.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import time
from collections import deque
from pathlib import Path

ARRIVAL, DEPARTURE = 0, 1


def erlang_c(lam: float, mu: float, c: int) -> dict[str, float] | None:
    """Exact steady-state M/M/c values, or None when the queue is unstable (rho >= 1)."""
    a = lam / mu  # offered load in erlangs
    rho = a / c
    if rho >= 1.0:
        return None
    terms = sum(a**k / math.factorial(k) for k in range(c))
    last = a**c / (math.factorial(c) * (1.0 - rho))
    p_wait = last / (terms + last)  # probability that an arrival has to wait
    lq = p_wait * rho / (1.0 - rho)
    wq = lq / lam
    return {
        "utilisation": rho,
        "p_wait": p_wait,
        "mean_wait": wq,
        "mean_time_in_system": wq + 1.0 / mu,
        "mean_queue_length": lq,
        "mean_number_in_system": lq + a,
    }


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def batch_means_ci(values: list[float], batches: int = 20) -> tuple[float, float]:
    """Half-width of a 95% confidence interval for the mean of a correlated series."""
    size = len(values) // batches
    if size < 2:
        return float("nan"), float("nan")
    means = [statistics.fmean(values[i * size : (i + 1) * size]) for i in range(batches)]
    t_975 = 2.093  # Student t quantile, 19 degrees of freedom
    half = t_975 * statistics.stdev(means) / math.sqrt(batches)
    return statistics.fmean(means), half


def simulate(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    lam, mu, c = args.arrival_rate, args.service_rate, args.servers
    warmup = args.warmup if args.warmup is not None else args.customers // 10
    total = warmup + args.customers

    events: list[tuple[float, int, int, int]] = []  # (time, sequence, kind, customer)
    sequence = 0
    queue: deque[int] = deque()  # waiting customers, FIFO
    arrived_at: dict[int, float] = {}
    busy = 0  # servers in use
    now = 0.0
    next_customer = 0
    done = 0

    # time-weighted statistics, collected after the warm-up
    measuring = warmup == 0
    t_start = 0.0
    area_queue = 0.0
    area_busy = 0.0
    last_t = 0.0
    waits: list[float] = []
    sojourns: list[float] = []
    waited = 0

    started = time.monotonic()
    reported = 0

    def schedule(t: float, kind: int, customer: int) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (t, sequence, kind, customer))

    def start_service(customer: int) -> None:
        nonlocal busy, waited
        busy += 1
        if measuring:
            wait = now - arrived_at[customer]
            waits.append(wait)
            waited += wait > 0.0
        schedule(now + rng.expovariate(mu), DEPARTURE, customer)

    schedule(rng.expovariate(lam), ARRIVAL, next_customer)
    next_customer += 1

    while done < total:
        t, _, kind, customer = heapq.heappop(events)
        if measuring:
            area_queue += len(queue) * (t - last_t)
            area_busy += busy * (t - last_t)
        last_t = now = t

        if kind == ARRIVAL:
            arrived_at[customer] = now
            if next_customer < total:
                schedule(now + rng.expovariate(lam), ARRIVAL, next_customer)
                next_customer += 1
            if busy < c:
                start_service(customer)
            else:
                queue.append(customer)
        else:  # DEPARTURE
            busy -= 1
            if measuring:
                sojourns.append(now - arrived_at[customer])
            del arrived_at[customer]
            done += 1
            if done == warmup and not measuring:
                measuring, t_start = True, now
            if queue:
                start_service(queue.popleft())

            percent = done * 100 // total
            if percent >= reported + 10:
                reported = percent - percent % 10
                print(
                    f"t={now:10.1f}  served {done:6d}/{total}  waiting {len(queue):4d}  "
                    f"progress ({reported}%)",
                    flush=True,
                )

    duration = now - t_start
    return {
        "warmup": warmup,
        "duration": duration,
        "waits": waits,
        "sojourns": sojourns,
        "waited": waited,
        "area_queue": area_queue,
        "area_busy": area_busy,
        "wall_seconds": time.monotonic() - started,
    }


def summarise(args: argparse.Namespace, raw: dict) -> dict:
    lam, mu, c = args.arrival_rate, args.service_rate, args.servers
    waits, sojourns, duration = raw["waits"], raw["sojourns"], raw["duration"]
    ordered = sorted(waits)
    _, wait_ci = batch_means_ci(waits)
    return {
        "model": f"M/M/{c}",
        "params": {
            "arrival_rate": lam,
            "service_rate": mu,
            "servers": c,
            "customers": args.customers,
            "warmup": raw["warmup"],
            "offered_utilisation": lam / (c * mu),
        },
        "seed": args.seed,
        "simulated_time": duration,
        "mean_wait": statistics.fmean(waits),
        "mean_wait_ci95": wait_ci,
        "wait_p50": percentile(ordered, 0.50),
        "wait_p90": percentile(ordered, 0.90),
        "wait_p99": percentile(ordered, 0.99),
        "p_wait": raw["waited"] / len(waits),
        "mean_time_in_system": statistics.fmean(sojourns),
        "mean_queue_length": raw["area_queue"] / duration,
        "mean_number_in_system": (raw["area_queue"] + raw["area_busy"]) / duration,
        "utilisation": raw["area_busy"] / (c * duration),
        "theory": erlang_c(lam, mu, c),
        "wall_seconds": round(raw["wall_seconds"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--arrival-rate", type=float, required=True, help="customers per unit time")
    parser.add_argument(
        "--service-rate", type=float, required=True, help="customers per unit time, per server"
    )
    parser.add_argument("--servers", type=int, default=1, help="number of servers c (default 1)")
    parser.add_argument(
        "--customers", type=int, default=20000, help="customers measured (default 20000)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="customers served before measuring starts (default: customers/10)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--output", default="results", help="directory for summary.json (default results)"
    )
    args = parser.parse_args(argv)
    if args.arrival_rate <= 0 or args.service_rate <= 0:
        parser.error("--arrival-rate and --service-rate must be positive")
    if args.servers < 1 or args.customers < 1 or (args.warmup or 0) < 0:
        parser.error("--servers and --customers must be at least 1, --warmup at least 0")

    lam, mu, c = args.arrival_rate, args.service_rate, args.servers
    print(
        f"M/M/{c} queue: arrival rate {lam:g}, service rate {mu:g}, "
        f"utilisation {lam / (c * mu):.3f}, {args.customers} customers, seed {args.seed}",
        flush=True,
    )
    summary = summarise(args, simulate(args))

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    theory = summary["theory"] or {}

    def row(name: str, key: str, extra: str = "") -> str:
        exact = theory.get(key)
        exact_text = f"{exact:10.4f}" if exact is not None else "       n/a"
        return f"  {name:<22}{summary[key]:10.4f}{extra}   exact {exact_text}"

    print("summary:")
    print(row("mean wait (Wq)", "mean_wait", f" +- {summary['mean_wait_ci95']:.4f}"))
    print(row("mean time in system", "mean_time_in_system"))
    print(row("mean queue length", "mean_queue_length"))
    print(row("utilisation", "utilisation"))
    print(row("P(wait > 0)", "p_wait"))
    print(
        f"  wait p50/p90/p99      {summary['wait_p50']:.3f} / {summary['wait_p90']:.3f} / "
        f"{summary['wait_p99']:.3f}"
    )
    print(f"wrote {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
