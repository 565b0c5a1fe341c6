"""`python -m balancer.sim`: every strategy on one trace per scenario; table, CSV and PNG.

Scenarios: `steady-R` for each rate R of --rates (no burst); `burst-R` at the first rate with
--burst tasks arriving at once at --burst-at seconds; `creep-R` at --creep-rate, on nodes that
start with leaked memory (a memory ratio between --creep-from and --creep-to); `hetero-R` at
--hetero-rate, on nodes whose speeds spread evenly from 1.6 down to 0.3; `loaded-R` at
--loaded-rate, on one loaded host: every node reports the machine's CPU figure (the nodes' mean
plus --host-cpu of other processes), and each call spends --call-wait seconds in flight off the
node's CPU. --seeds 1-5 runs every scenario for each seed and prints the median and spread per
strategy. The only I/O of the
balancer package lives here.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from balancer.sim.engine import DEFAULT_RUNS, RunResult, SimConfig, compare, make_scenario
from balancer.sim.report import (
    chart,
    csv_text,
    seeds_csv_text,
    seeds_table,
    table,
    timeline_csv_text,
)

_FASTEST, _SLOWEST = 1.6, 0.3  # node speeds of the heterogeneous scenario


def _parser() -> argparse.ArgumentParser:
    defaults = SimConfig()
    parser = argparse.ArgumentParser(prog="python -m balancer.sim", description=__doc__)
    parser.add_argument("--rates", default="120,200", help="arrivals per second (120,200)")
    parser.add_argument("--burst", type=int, default=1000, help="burst size, 0 for none (1000)")
    parser.add_argument("--burst-at", type=float, default=defaults.burst_at_s, help="(20 s)")
    parser.add_argument("--creep-rate", type=float, default=120.0, help="0 for none (120)")
    parser.add_argument("--creep-from", type=float, default=0.55, help="memory ratio (0.55)")
    parser.add_argument("--creep-to", type=float, default=0.68, help="memory ratio (0.68)")
    parser.add_argument("--hetero-rate", type=float, default=160.0, help="0 for none (160)")
    parser.add_argument("--loaded-rate", type=float, default=160.0, help="0 for none (160)")
    parser.add_argument("--host-cpu", type=float, default=0.2, help="CPU ratio (0.2)")
    parser.add_argument("--call-wait", type=float, default=0.1, help="seconds (0.1)")
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="(60 s)")
    parser.add_argument("--nodes", type=int, default=defaults.nodes, help="(5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the trace (1)")
    parser.add_argument(
        "--seeds", default="", help="run these seeds, e.g. 1-5 or 1,3; prints median and spread"
    )
    parser.add_argument("--out", type=Path, default=Path("results/sim"), help="(results/sim/)")
    return parser


def parse_seeds(text: str) -> list[int]:
    """'1-5' -> [1, 2, 3, 4, 5]; '1,3' -> [1, 3]; '' -> []."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def scenarios(args: argparse.Namespace) -> list[tuple[str, SimConfig]]:
    """(name, config) of every scenario the arguments ask for, in a fixed order."""
    rates = [float(r) for r in args.rates.split(",") if r]
    base = SimConfig(duration_s=args.duration, nodes=args.nodes, burst_at_s=args.burst_at)
    plans = [(f"steady-{r:g}", dataclasses.replace(base, rate=r, burst=0)) for r in rates]
    if args.burst and rates:
        plans.append(
            (f"burst-{rates[0]:g}", dataclasses.replace(base, rate=rates[0], burst=args.burst))
        )
    if args.creep_rate > 0:
        creep = dataclasses.replace(
            base, rate=args.creep_rate, burst=0, creep_from=args.creep_from, creep_to=args.creep_to
        )
        plans.append((f"creep-{args.creep_rate:g}", creep))
    if args.hetero_rate > 0:
        speeds = tuple(np.linspace(_FASTEST, _SLOWEST, args.nodes).tolist())
        hetero = dataclasses.replace(base, rate=args.hetero_rate, burst=0, speeds=speeds)
        plans.append((f"hetero-{args.hetero_rate:g}", hetero))
    if args.loaded_rate > 0:
        loaded = dataclasses.replace(
            base,
            rate=args.loaded_rate,
            burst=0,
            machine_cpu=True,
            host_cpu=args.host_cpu,
            call_wait_s=args.call_wait,
        )
        plans.append((f"loaded-{args.loaded_rate:g}", loaded))
    return plans


def run_seed(
    plans: Sequence[tuple[str, SimConfig]], seed: int, *, verbose: bool
) -> list[RunResult]:
    """Every run of every scenario for one seed."""
    results = []
    for k, (name, config) in enumerate(plans):
        # One generator per scenario, so adding a scenario does not change the others' traces.
        scenario = make_scenario(config, np.random.default_rng([seed, k]), name)
        if verbose:
            cal = scenario.calibration
            print(
                f"{name}: {len(scenario.trace)} tasks; calibration "
                f"Dis_avemin={cal.dis_avemin:.3f} Dis_avemax={cal.dis_avemax:.3f} "
                f"Dis_ave={cal.dis_ave:.3f}"
            )
        results += compare(scenario, DEFAULT_RUNS)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios, print the table, write summary.csv, timeline.csv and sim.png; with
    --seeds, also print the median and spread over the seeds and write seeds.csv."""
    args = _parser().parse_args(argv)
    plans = scenarios(args)
    seeds = parse_seeds(args.seeds)
    started = time.perf_counter()
    results = run_seed(plans, seeds[0] if seeds else args.seed, verbose=True)
    print()
    print(table(results))
    by_seed = {seeds[0]: results} if seeds else {}
    for seed in seeds[1:]:
        by_seed[seed] = run_seed(plans, seed, verbose=False)
    args.out.mkdir(parents=True, exist_ok=True)
    if by_seed:
        print()
        print(seeds_table(by_seed, {name: config for name, config in plans}))
        (args.out / "seeds.csv").write_text(seeds_csv_text(by_seed))
    (args.out / "summary.csv").write_text(csv_text(results))
    (args.out / "timeline.csv").write_text(timeline_csv_text(results))
    limit = SimConfig().time_limit_s
    chart(results, time_limit_s=limit).savefig(args.out / "sim.png", dpi=110)
    took = time.perf_counter() - started
    written = "seeds.csv, summary.csv" if by_seed else "summary.csv"
    print(f"\nwrote {written}, timeline.csv and sim.png to {args.out}/ in {took:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
