"""The three experiments of CS231n's batch normalization notebook, on the shipped digits by default.

1. A 6-layer net with and without batchnorm: loss, training and validation accuracy     -> bn_vs_baseline.png
2. Weight-initialization scale sweep of 8-layer nets, batchnorm vs none: best validation
   and training accuracy and final training loss against the scale (log axis)           -> weight_scale.png
3. Batch-size sweep with batchnorm and with layernorm, against an unnormalized net
   trained with the smallest batch size: accuracy curves             -> batch_size_batchnorm.png, ..._layernorm.png

The defaults are the notebook's settings (1000 training images, 10 epochs per run, 20 weight scales, batch sizes
5, 10 and 50) and take under a minute on the digits with NumPy on two CPU cores. ``--data cifar10`` runs them on
CIFAR-10 as the notebook does (slower: use a GPU backend).

    python examples/batchnorm_experiments.py --out-dir bn_plots
    python examples/batchnorm_experiments.py --experiments 2 --scales 20 --backend torch
"""

from __future__ import annotations

import math
import os
import time
import warnings

from _common import add_common_flags, new_parser, start  # first: it sets the thread defaults NumPy reads on import

import numpy as np  # noqa: E402
from xpnet.classifiers import FullyConnectedNet  # noqa: E402
from xpnet.solver import NonFiniteLossWarning, Solver  # noqa: E402
from xpnet.vis_utils import plot_solver_history  # noqa: E402


def parse_args(argv=None):
    p = add_common_flags(new_parser(__doc__), num_train=1000)
    p.add_argument("--out-dir", metavar="DIR", default="bn_plots", help="where the PNG files go")
    p.add_argument("--experiments", type=int, nargs="+", choices=(1, 2, 3), default=[1, 2, 3], help="which to run")
    p.add_argument("--epochs", type=int, default=10, help="epochs of every training run")
    p.add_argument("--scales", type=int, default=20, help="weight scales in logspace(-4, 0) for experiment 2")
    p.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[5, 10, 50], metavar="B", help="batch sizes of experiment 3"
    )
    return p.parse_args(argv)


class Runner:
    """Builds and trains the experiments' fully connected nets with Adam on one backend and data set."""

    def __init__(self, args, xp, device, data):
        self.args, self.xp, self.device, self.data = args, xp, device, data
        self.input_dim = math.prod(data["X_train"].shape[1:])

    def fit(self, hidden_dims, normalization, *, weight_scale, lr, batch_size):
        """A trained Solver; a run whose loss blows up stops there and keeps its histories so far."""
        model = FullyConnectedNet(
            hidden_dims,
            input_dim=self.input_dim,
            num_classes=10,
            normalization=normalization,
            weight_scale=weight_scale,
            dtype=self.args.dtype,
            xp=self.xp,
            device=self.device,
        )
        solver = Solver(
            model,
            self.data,
            update_rule="adam",
            optim_config={"learning_rate": lr},
            num_epochs=self.args.epochs,
            batch_size=batch_size,
            print_every=10**9,
            verbose=False,
            seed=self.args.seed,
        )
        # A diverging run (large weight scales do) stops with a NonFiniteLossWarning and keeps its best params;
        # the sweep goes on with the next run, and the message is printed on one line with the run's name.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NonFiniteLossWarning)
            solver.train()
        for w in caught:
            if issubclass(w.category, NonFiniteLossWarning):
                print(f"  {normalization or 'baseline'}, weight scale {weight_scale:.2e}: stopped, {w.message}")
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return solver


def with_and_without_batchnorm(run: Runner, out_dir: str) -> str:
    """Experiment 1: the notebook's 'Batchnorm for deep networks'."""
    solvers = {}
    for label, norm in (("baseline", None), ("batchnorm", "batchnorm")):
        solvers[label] = s = run.fit([100] * 5, norm, weight_scale=2e-2, lr=1e-3, batch_size=50)
        print(f"  {label}: best val acc {s.best_val_acc:.3f}, final train acc {s.train_acc_history[-1]:.3f}")
    return plot_solver_history(
        solvers, os.path.join(out_dir, "bn_vs_baseline.png"), title="6-layer net, weight scale 2e-2"
    )


def _final_loss(solver: Solver) -> float:
    """Mean of the last 100 losses, NaN for a run stopped by a non-finite loss (drawn as a gap)."""
    losses = solver.loss_history[-100:]
    if not losses or not all(math.isfinite(v) for v in solver.loss_history):
        return float("nan")
    return float(np.mean(losses))


def weight_scale_sweep(run: Runner, out_dir: str) -> str:
    """Experiment 2: 8-layer nets over weight-initialization scales, with and without batchnorm."""
    from matplotlib.figure import Figure

    scales = np.logspace(-4, 0, num=run.args.scales)
    results = {"baseline": [], "batchnorm": []}
    for ws in scales:
        for label, norm in (("baseline", None), ("batchnorm", "batchnorm")):
            s = run.fit([50] * 7, norm, weight_scale=float(ws), lr=1e-3, batch_size=50)
            best_train = max(s.train_acc_history, default=float("nan"))
            results[label].append((s.best_val_acc, best_train, _final_loss(s)))
        b, n = results["baseline"][-1], results["batchnorm"][-1]
        print(f"  weight scale {ws:.2e}: best val acc baseline {b[0]:.3f}, batchnorm {n[0]:.3f}")

    fig = Figure(figsize=(8, 11), layout="constrained")
    panels = fig.subplots(3, 1)
    titles = ("Best validation accuracy", "Best training accuracy", "Final training loss (mean of last 100)")
    for i, (ax, title) in enumerate(zip(panels, titles)):
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
    baseline = run.fit([100] * 5, None, weight_scale=2e-2, lr=lr, batch_size=sizes[0])
    print(f"  baseline, batch size {sizes[0]}: best val acc {baseline.best_val_acc:.3f}")
    paths = []
    for norm in ("batchnorm", "layernorm"):
        solvers = {f"baseline, batch {sizes[0]}": baseline}
        for bs in sizes:
            solvers[f"{norm}, batch {bs}"] = s = run.fit([100] * 5, norm, weight_scale=2e-2, lr=lr, batch_size=bs)
            print(f"  {norm}, batch size {bs}: best val acc {s.best_val_acc:.3f}")
        path = os.path.join(out_dir, f"batch_size_{norm}.png")
        paths.append(plot_solver_history(solvers, path, title=f"{norm}: batch size"))
    return paths


def main(argv=None):
    args = parse_args(argv)
    xp, device, data = start(args)
    os.makedirs(args.out_dir, exist_ok=True)
    run = Runner(args, xp, device, data)
    experiments = {1: with_and_without_batchnorm, 2: weight_scale_sweep, 3: batch_size_sweep}
    for number in sorted(set(args.experiments)):
        experiment = experiments[number]
        print(f"experiment {number}: {experiment.__doc__.split(': ', 1)[1]}")
        np.random.seed(args.seed)  # each experiment draws the same weights whichever others run
        begin = time.perf_counter()
        written = experiment(run, args.out_dir)
        for path in [written] if isinstance(written, str) else written:
            print(f"  wrote {path}")
        print(f"  took {time.perf_counter() - begin:.1f} s")


if __name__ == "__main__":
    main()
