"""The three experiments of CS231n's batch normalization notebook, on the shipped digits by default.

1. A 6-layer net with and without batchnorm: loss, training and validation accuracy     -> bn_vs_baseline.png
2. Weight-initialization scale sweep of 8-layer nets, batchnorm vs none: best validation
   and training accuracy and final training loss against the scale (log axis)           -> weight_scale.png
3. Batch-size sweep with batchnorm and with layernorm, against an unnormalized net
   trained with the smallest batch size: accuracy curves             -> batch_size_batchnorm.png, ..._layernorm.png

The defaults are the notebook's settings (1000 training images, 10 epochs per run, 20 weight scales, batch sizes
5, 10 and 50) and take under a minute on the digits with NumPy on two CPU cores. ``--data cifar10`` runs them on
CIFAR-10 as the notebook does (slower: use a GPU backend). Every experiment is a sweep (:mod:`xpnet.sweep`): its
training runs are spread over one worker process per core, or a Dask cluster with ``--scheduler``.

    python examples/batchnorm_experiments.py --out-dir bn_plots
    python examples/batchnorm_experiments.py --experiments 2 --scales 20 --backend torch
    python examples/batchnorm_experiments.py --scheduler tcp://scheduler:8786    # on a running Dask cluster
"""

from __future__ import annotations

import functools
import math
import os
import time

from _common import (  # first: it sets the thread defaults NumPy reads on import
    add_common_flags,
    add_sweep_flags,
    new_parser,
    start,
    sweep_client,
)

# isort: split
import numpy as np

from xpnet import backend_name
from xpnet.classifiers import FullyConnectedNet
from xpnet.solver import Solver
from xpnet.sweep import sweep
from xpnet.vis_utils import plot_solver_history


def parse_args(argv=None):
    p = add_common_flags(new_parser(__doc__), num_train=1000)
    p.add_argument("--out-dir", metavar="DIR", default="bn_plots", help="where the PNG files go")
    p.add_argument("--experiments", type=int, nargs="+", choices=(1, 2, 3), default=[1, 2, 3], help="which to run")
    p.add_argument("--epochs", type=int, default=10, help="epochs of every training run")
    p.add_argument("--scales", type=int, default=20, help="weight scales in logspace(-4, 0) for experiment 2")
    p.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[5, 10, 50], metavar="B", help="batch sizes of experiment 3"
    )
    add_sweep_flags(p)
    return p.parse_args(argv)


def make_solver(config, data, *, settings):
    """One training run of the experiments (runs on a Dask worker): a fully connected net trained with Adam."""
    from xpnet._backend import load_namespace

    xp = load_namespace(settings["backend"])
    model = FullyConnectedNet(
        config["hidden_dims"],
        input_dim=math.prod(data["X_train"].shape[1:]),
        num_classes=10,
        normalization=config["normalization"],
        weight_scale=config["weight_scale"],
        dtype=settings["dtype"],
        xp=xp,
        device=settings["device"],
    )
    return Solver(
        model,
        data,
        update_rule="adam",
        optim_config={"learning_rate": config["lr"]},
        num_epochs=settings["epochs"],
        batch_size=config["batch_size"],
        print_every=10**9,
        verbose=False,
        seed=settings["seed"],
    )


class Runner:
    """Runs the experiments' sweeps of fully connected nets on one backend, data set and Dask client."""

    def __init__(self, args, xp, device, data, client):
        self.args, self.data, self.client = args, data, client
        settings = {
            "backend": backend_name(xp),
            "device": device,
            "dtype": args.dtype,
            "epochs": args.epochs,
            "seed": args.seed,
        }
        self.make_solver = functools.partial(make_solver, settings=settings)

    def fit(self, configs):
        """The sweep's records; a run whose loss blows up stops there and keeps its histories so far."""
        results = sweep(
            self.make_solver,
            configs,
            data=self.data,
            seed=self.args.seed,
            client=self.client,
            progress=False if self.args.quiet else None,
        )
        for r in results:
            if r["status"] != "ok":
                c = r["config"]
                print(
                    f"  {c['normalization'] or 'baseline'}, weight scale {c['weight_scale']:.2e}: {r['status']}, "
                    f"{r['error']}"
                )
        return results


def _config(hidden_dims, normalization, *, weight_scale, lr, batch_size):
    return {
        "hidden_dims": hidden_dims,
        "normalization": normalization,
        "weight_scale": weight_scale,
        "lr": lr,
        "batch_size": batch_size,
    }


def with_and_without_batchnorm(run: Runner, out_dir: str) -> str:
    """Experiment 1: the notebook's 'Batchnorm for deep networks'."""
    labels = {"baseline": None, "batchnorm": "batchnorm"}
    configs = [_config([100] * 5, norm, weight_scale=2e-2, lr=1e-3, batch_size=50) for norm in labels.values()]
    solvers = dict(zip(labels, run.fit(configs), strict=True))
    for label, r in solvers.items():
        print(f"  {label}: best val acc {r['best_val_acc']:.3f}, final train acc {r['train_acc_history'][-1]:.3f}")
    return plot_solver_history(
        solvers, os.path.join(out_dir, "bn_vs_baseline.png"), title="6-layer net, weight scale 2e-2"
    )


def _final_loss(record: dict) -> float:
    """Mean of the last 100 losses, NaN for a run stopped by a non-finite loss (drawn as a gap)."""
    losses = record["loss_history"][-100:]
    if not losses or not all(math.isfinite(v) for v in record["loss_history"]):
        return float("nan")
    return float(np.mean(losses))


def weight_scale_sweep(run: Runner, out_dir: str) -> str:
    """Experiment 2: 8-layer nets over weight-initialization scales, with and without batchnorm."""
    from matplotlib.figure import Figure

    scales = [float(ws) for ws in np.logspace(-4, 0, num=run.args.scales)]
    configs = [
        _config([50] * 7, norm, weight_scale=ws, lr=1e-3, batch_size=50)
        for ws in scales
        for norm in (None, "batchnorm")
    ]
    records = run.fit(configs)
    results = {"baseline": [], "batchnorm": []}
    for r in records:
        best_train = max(r["train_acc_history"], default=float("nan"))
        best_val = float("nan") if r["best_val_acc"] is None else r["best_val_acc"]
        results[r["config"]["normalization"] or "baseline"].append((best_val, best_train, _final_loss(r)))
    for ws, b, n in zip(scales, results["baseline"], results["batchnorm"], strict=True):
        print(f"  weight scale {ws:.2e}: best val acc baseline {b[0]:.3f}, batchnorm {n[0]:.3f}")

    fig = Figure(figsize=(8, 11), layout="constrained")
    panels = fig.subplots(3, 1)
    titles = ("Best validation accuracy", "Best training accuracy", "Final training loss (mean of last 100)")
    for i, (ax, title) in enumerate(zip(panels, titles, strict=True)):
        for label, rows in results.items():
            ax.semilogx(scales, [row[i] for row in rows], "-o", label=label)
        ax.set(title=f"{title} vs weight initialization scale", xlabel="Weight initialization scale")
        ax.legend(fontsize="small")
    if any(row[2] > 0 for rows in results.values() for row in rows):
        panels[2].set_yscale("log")  # the unnormalized nets' loss spans orders of magnitude
    fig.suptitle("8-layer nets")
    path = os.path.join(out_dir, "weight_scale.png")
    fig.savefig(path, format="png", dpi=100)
    return path


def batch_size_sweep(run: Runner, out_dir: str) -> list[str]:
    """Experiment 3: accuracy curves for several batch sizes, with batchnorm and with layernorm."""
    sizes = sorted(run.args.batch_sizes)
    lr = 10**-3.5
    runs = [(None, sizes[0])] + [(norm, bs) for norm in ("batchnorm", "layernorm") for bs in sizes]
    records = run.fit([_config([100] * 5, norm, weight_scale=2e-2, lr=lr, batch_size=bs) for norm, bs in runs])
    for r in records:
        c = r["config"]
        print(
            f"  {c['normalization'] or 'baseline'}, batch size {c['batch_size']}: best val acc {r['best_val_acc']:.3f}"
        )
    baseline = records[0]
    paths = []
    for norm in ("batchnorm", "layernorm"):
        solvers = {f"baseline, batch {sizes[0]}": baseline}
        for r in records[1:]:
            if r["config"]["normalization"] == norm:
                solvers[f"{norm}, batch {r['config']['batch_size']}"] = r
        path = os.path.join(out_dir, f"batch_size_{norm}.png")
        paths.append(plot_solver_history(solvers, path, title=f"{norm}: batch size"))
    return paths


def main(argv=None):
    args = parse_args(argv)
    xp, device, data = start(args)
    os.makedirs(args.out_dir, exist_ok=True)
    experiments = {1: with_and_without_batchnorm, 2: weight_scale_sweep, 3: batch_size_sweep}
    # One cluster for all experiments: its worker processes start once. Each trial's weights are seeded from
    # (--seed, its index in its sweep), so an experiment draws the same weights whichever others run.
    with sweep_client(args) as client:
        run = Runner(args, xp, device, data, client)
        for number in sorted(set(args.experiments)):
            experiment = experiments[number]
            print(f"experiment {number}: {experiment.__doc__.split(': ', 1)[1]}")
            begin = time.perf_counter()
            written = experiment(run, args.out_dir)
            for path in [written] if isinstance(written, str) else written:
                print(f"  wrote {path}")
            print(f"  took {time.perf_counter() - begin:.1f} s")


if __name__ == "__main__":
    main()
