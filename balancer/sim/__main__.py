"""`python -m balancer.sim`: every strategy on one trace per scenario; table, CSV and PNG.

Scenarios: `steady-R` for each rate R of --rates (no burst), then `burst-R` at the first rate
with --burst tasks arriving at once at --burst-at seconds. The only I/O of the balancer package
lives here.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from balancer.sim.engine import DEFAULT_RUNS, SimConfig, compare, make_scenario
from balancer.sim.report import chart, csv_text, table, timeline_csv_text


def _parser() -> argparse.ArgumentParser:
    defaults = SimConfig()
    parser = argparse.ArgumentParser(prog="python -m balancer.sim", description=__doc__)
    parser.add_argument("--rates", default="120,200", help="arrivals per second (120,200)")
    parser.add_argument("--burst", type=int, default=1000, help="burst size, 0 for none (1000)")
    parser.add_argument("--burst-at", type=float, default=defaults.burst_at_s, help="(20 s)")
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="(60 s)")
    parser.add_argument("--nodes", type=int, default=defaults.nodes, help="(5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the trace (1)")
    parser.add_argument("--out", type=Path, default=Path("results/sim"), help="(results/sim/)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios, print the table, write summary.csv, timeline.csv and sim.png."""
    args = _parser().parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r]
    base = SimConfig(duration_s=args.duration, nodes=args.nodes, burst_at_s=args.burst_at)
    plans = [(f"steady-{r:g}", dataclasses.replace(base, rate=r, burst=0)) for r in rates]
    if args.burst and rates:
        plans.append(
            (f"burst-{rates[0]:g}", dataclasses.replace(base, rate=rates[0], burst=args.burst))
        )
    started = time.perf_counter()
    results = []
    for k, (name, config) in enumerate(plans):
        # One generator per scenario, so adding a scenario does not change the others' traces.
        rng = np.random.default_rng([args.seed, k])
        scenario = make_scenario(config, rng, name)
        cal = scenario.calibration
        print(
            f"{name}: {len(scenario.trace)} tasks; calibration Dis_avemin={cal.dis_avemin:.3f} "
            f"Dis_avemax={cal.dis_avemax:.3f} Dis_ave={cal.dis_ave:.3f}"
        )
        results += compare(scenario, DEFAULT_RUNS)
    print()
    print(table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.csv").write_text(csv_text(results))
    (args.out / "timeline.csv").write_text(timeline_csv_text(results))
    chart(results, time_limit_s=base.time_limit_s).savefig(args.out / "sim.png", dpi=110)
    took = time.perf_counter() - started
    print(f"\nwrote summary.csv, timeline.csv and sim.png to {args.out}/ in {took:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
