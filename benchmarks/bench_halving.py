"""The same search with and without successive halving (``sweep(..., halving=...)``, issue 22), on digits.

    .venv/bin/python benchmarks/bench_halving.py [--workers 2] [--rounds 2] [--quick]

27 configs (Adam learning rate x L2 reg x weight scale, 3 values each) of a fully connected net [100, 100] on the
digits (1397 training, 200 validation images), ``num_epochs=9``, batch 50; once every config trains 9 epochs (the
full grid), once with ``halving={"min_epochs": 1, "eta": 3}`` (rungs of 1, 3 and 9 epochs: 27, 9 and 3 trials).
Both run on one local Dask cluster of ``--workers`` single-threaded worker processes, started once (its start is
not timed), taking turns for ``--rounds`` rounds; the table gives each one's median wall time and the median of
the per-round ratios halving / full, with the epochs trained (the sum of the records' ``epochs``: each rung
continues from the one before) and the best validation accuracy found (``results.best()``).

Checked before any time is printed (exit status 1 otherwise): every round gives the same records; the trials
that reach the last rung have the full grid's records (histories, best_val_acc, epochs; all but ``seconds``,
``worker`` and ``rung``); the halving search trains at most 27 + 9*2 + 3*6 = 63 epochs; its best validation
accuracy is within 0.03 of the full grid's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

# The workers are single-threaded processes: one BLAS thread each (set before NumPy loads; the workers inherit it).
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from _machine import cpu_name  # noqa: E402

HALVING = {"min_epochs": 1, "eta": 3}


def make_solver(config, data, *, epochs):
    """One trial: a [100, 100] net with this config's weight scale and reg, Adam with its learning rate."""
    from xpnet.classifiers import FullyConnectedNet
    from xpnet.solver import Solver

    model = FullyConnectedNet([100, 100], input_dim=64, weight_scale=config["weight_scale"], reg=config["reg"])
    return Solver(
        model,
        data,
        update_rule="adam",
        optim_config={"learning_rate": config["learning_rate"]},
        lr_decay=0.95,
        num_epochs=epochs,
        batch_size=50,
        verbose=False,
    )


def _text(record) -> str:
    return json.dumps({k: v for k, v in record.items() if k not in ("seconds", "worker", "rung")}, sort_keys=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster (default: 2)")
    p.add_argument("--rounds", type=int, default=2, help="turns of each search (default: 2)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 9 configs, 3 epochs, one round")
    args = p.parse_args(argv)

    import functools

    import numpy as np

    from xpnet.data_utils import get_digits_data
    from xpnet.sweep import grid, local_client, sweep

    epochs = 3 if args.quick else 9
    rounds = 1 if args.quick else args.rounds
    values = {"learning_rate": [1e-4, 1e-3, 1e-2], "reg": [0.0, 1e-2, 1.0], "weight_scale": [1e-3, 1e-2, 1e-1]}
    if args.quick:
        values["weight_scale"] = [1e-2]
    configs = grid(**values)
    d = get_digits_data()
    data = {k: d[k] for k in ("X_train", "y_train", "X_val", "y_val")}
    make = functools.partial(make_solver, epochs=epochs)
    load = os.getloadavg()[0]
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_name()}, {os.cpu_count()} CPUs")
    print(f"# NumPy {np.__version__}, Python {sys.version.split()[0]}, {args.workers} workers, load {load:.2f}")
    print(f"# {len(configs)} configs, num_epochs={epochs}, {len(data['X_train'])} training images, halving={HALVING}")
    runs: dict[str, list] = {"full": [], "halving": []}
    with local_client(args.workers) as client:
        for _ in range(rounds):
            for name, halving in (("full", None), ("halving", HALVING)):
                begin = time.perf_counter()
                results = sweep(make, configs, data=data, seed=0, client=client, progress=False, halving=halving)
                runs[name].append((time.perf_counter() - begin, results))
    print(f"# load at the end {os.getloadavg()[0]:.2f}")

    problems = []
    for name, rows in runs.items():
        first = [_text(r) for r in rows[0][1]]
        if any([_text(r) for r in results] != first for _, results in rows[1:]):
            problems.append(f"{name}: the rounds gave different records")
    full, halved = runs["full"][0][1], runs["halving"][0][1]
    top = max(r["rung"] for r in halved)
    survivors = [r for r in halved if r["rung"] == top and r["status"] == "ok"]
    differ = [r["index"] for r in survivors if _text(r) != _text(full[r["index"]])]
    if differ:
        problems.append(f"trials {differ} reached the last rung with records unlike the full grid's")
    trained = {name: sum(r["epochs"] for r in rows[0][1]) for name, rows in runs.items()}
    budget = sum(n * e for n, e in zip((27, 9, 3), (1, 2, 6), strict=True)) if not args.quick else trained["full"]
    if trained["halving"] > budget:
        problems.append(f"halving trained {trained['halving']} epochs, more than {budget}")
    best = {name: rows[0][1].best()["best_val_acc"] for name, rows in runs.items()}
    if best["halving"] < best["full"] - 0.03:
        problems.append(f"halving's best val acc {best['halving']:.4f} is not within 0.03 of {best['full']:.4f}")
    if problems:
        print("CHECK FAILED:\n  " + "\n  ".join(problems))
        return 1

    ratios = [h[0] / f[0] for f, h in zip(runs["full"], runs["halving"], strict=True)]
    print(f"\n{'search':<9} {'trials':>6} {'epochs trained':>15} {'wall s (median)':>16} {'best val acc':>13}")
    for name, rows in runs.items():
        seconds = statistics.median(t for t, _ in rows)
        runs_made = len(configs) if name == "full" else sum(r["rung"] + 1 for r in rows[0][1])
        print(f"{name:<9} {runs_made:>6} {trained[name]:>15} {seconds:>16.2f} {best[name]:>13.4f}")
    each = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"\nwall time halving / full: {statistics.median(ratios):.2f} (per round: {each})")
    print(f"surviving trials {[r['index'] for r in survivors]}: records equal to the full grid's")
    for name, rows in runs.items():
        print(f"best config, {name}: {rows[0][1].best()['config']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
