"""Learning rate × regularization search for a fully connected net, as CS231n's FullyConnectedNets notebook asks.

Every (learning rate, reg) pair trains one net; the runs are spread over a local Dask cluster (one worker process
per core, or --workers N) or a running cluster (--scheduler ADDRESS). Prints the table of results and the best
config, and writes best validation accuracy against the learning rate, one line per reg.

    python examples/sweep_cifar.py                                   # digits, on this machine's cores
    python examples/sweep_cifar.py --data cifar10 --scheduler tcp://scheduler:8786 --epochs 10
    python examples/sweep_cifar.py --lrs 1e-4 1e-3 1e-2 --regs 0 1e-2 --workers 2 --save sweep.json
    python examples/sweep_cifar.py --epochs 9 --halving 1 3      # successive halving: 1, 3, 9 epochs, best third on

With --halving MIN_EPOCHS ETA every run trains MIN_EPOCHS epochs and only the best 1/ETA of them continue, from their
checkpoints, to ETA times as many, and so on up to --epochs; it also writes validation accuracy against epochs, one
line per run (--curves), where the stopped runs show.
"""

from __future__ import annotations

import functools
import math
import time

from _common import (  # first: it sets the thread defaults NumPy reads on import
    add_common_flags,
    add_sweep_flags,
    choose_backend,
    load_data,
    new_parser,
    start,
    sweep_client,
)

# isort: split
import numpy as np

from xpnet import backend_name
from xpnet.classifiers import FullyConnectedNet
from xpnet.solver import Solver
from xpnet.sweep import grid, sweep


def parse_args(argv=None):
    p = add_common_flags(new_parser(__doc__))
    p.add_argument(
        "--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3], metavar="LR", help="Adam learning rates"
    )
    p.add_argument(
        "--regs", type=float, nargs="+", default=[0.0, 1e-3, 1e-2], metavar="REG", help="L2 regularization strengths"
    )
    p.add_argument("--hidden-dims", type=int, nargs="+", default=[100, 100], metavar="H", help="hidden layer sizes")
    p.add_argument("--epochs", type=int, default=5, help="epochs of every training run")
    p.add_argument("--batch-size", type=int, default=100, help="images per minibatch")
    p.add_argument("--plot", metavar="PATH", default="sweep.png", help="where the accuracy plot goes")
    p.add_argument("--save", metavar="PATH", help="also write the records to this JSON file (default: not saved)")
    p.add_argument(
        "--halving",
        type=int,
        nargs=2,
        metavar=("MIN_EPOCHS", "ETA"),
        help="successive halving: train every run MIN_EPOCHS epochs, continue the best 1/ETA (default: off)",
    )
    p.add_argument(
        "--curves", metavar="PATH", default="sweep_curves.png", help="with --halving: where the curves plot goes"
    )
    add_sweep_flags(p)
    return p.parse_args(argv)


def make_solver(config, data, *, settings):
    """One run of the search (on a Dask worker): the net with this config's reg, Adam with its learning rate."""
    from xpnet._backend import load_namespace

    model = FullyConnectedNet(
        settings["hidden_dims"],
        input_dim=math.prod(data["X_train"].shape[1:]),
        reg=config["reg"],
        dtype=settings["dtype"],
        xp=load_namespace(settings["backend"]),
        device=settings["device"],
    )
    return Solver(
        model,
        data,
        update_rule="adam",
        optim_config={"learning_rate": config["learning_rate"]},
        lr_decay=0.95,
        num_epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        verbose=False,
        seed=settings["seed"],
    )


def load_on_worker(args):
    """The CIFAR-10 loader a worker calls: the data set is read where the trials run, not shipped in the graph."""
    try:
        return load_data(args)
    except SystemExit as err:  # the example's one-line message, as an error the sweep reports per run
        raise FileNotFoundError(str(err)) from None


def main(argv=None):
    args = parse_args(argv)
    if args.data == "cifar10":
        np.random.seed(args.seed)
        xp, device, description = choose_backend(args.backend)
        print(f"backend: {description}; data: cifar10, read by the workers")
        data = functools.partial(load_on_worker, args)
    else:
        xp, device, data = start(args)
    settings = {
        "backend": backend_name(xp),
        "device": device,
        "dtype": args.dtype,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "hidden_dims": args.hidden_dims,
        "seed": args.seed,
    }
    configs = grid(learning_rate=args.lrs, reg=args.regs)
    begin = time.perf_counter()
    with sweep_client(args) as client:
        results = sweep(
            functools.partial(make_solver, settings=settings),
            configs,
            data=data,
            seed=args.seed,
            client=client,
            progress=False if args.quiet else None,
            halving=None if args.halving is None else {"min_epochs": args.halving[0], "eta": args.halving[1]},
        )
    print(f"{len(results)} runs in {time.perf_counter() - begin:.1f} s: {results}")
    columns = ["learning_rate", "reg", "status", "best_val_acc", "final_train_acc", "seconds"]
    if args.halving is not None:
        columns[3:3] = ["epochs", "rung"]
        print(f"epochs trained: {sum(r['epochs'] for r in results)} (without halving: {len(results) * args.epochs})")
    table = results.to_pandas()[columns]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    failed = [r for r in results if r["status"] == "error"]
    for r in failed:
        print(f"  {r['config']}: {r['error']}")
    if len(failed) == len(results):
        raise SystemExit("every run failed; the first error is above")
    best = results.best()
    print(
        f"best: learning_rate {best['config']['learning_rate']:g}, reg {best['config']['reg']:g}: "
        f"val acc {best['best_val_acc']:.4f}"
    )
    if args.save:
        results.save(args.save)
        print(f"records written to {args.save}")
    path = results.plot(
        x="learning_rate",
        y="best_val_acc",
        hue="reg",
        path=args.plot,
        logx=True,
        title=f"{args.data}: best validation accuracy",
    )
    print(f"plot written to {path}")
    if args.halving is not None:
        path = results.plot_curves(args.curves, title=f"{args.data}: successive halving")
        print(f"curves written to {path}")


if __name__ == "__main__":
    main()
