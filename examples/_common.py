"""What the training examples share: command-line flags, backend choice, data loading and a timed Solver run.

Import it before NumPy: it sets the CPU thread defaults, which BLAS and OpenMP read when they load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

# The digits nets are too small to gain from several CPU threads, and idle pool threads that spin made runs ten
# times slower whenever other processes shared the cores. Set these variables yourself to use more threads (worth
# it for CIFAR-10 on the CPU).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

# Running `python examples/train_fc.py` from a source checkout works without installing xpnet.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xpnet._backend import load_namespace, sync  # noqa: E402
from xpnet.data_utils import get_CIFAR10_data, get_digits_data  # noqa: E402
from xpnet.solver import Solver, checkpoint_epoch  # noqa: E402
from xpnet.vis_utils import plot_solver_history  # noqa: E402

BACKENDS = ("auto", "numpy", "cupy", "torch")


def cupy_problem() -> str | None:
    """Why CuPy cannot run here (not installed, no driver, no device), or None when it runs a kernel on a GPU."""
    try:
        import cupy
    except ImportError:
        return 'CuPy is not installed; install it with: pip install "cupy-cuda12x>=14" (cupy-cuda13x for CUDA 13)'
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no CUDA device"
        if float(cupy.arange(3).sum()) != 3.0:
            return "CuPy computed a wrong sum on the GPU"
    except Exception as err:  # no driver, driver too old, device busy: all mean "use the CPU"
        return f"CuPy cannot use the GPU: {type(err).__name__}: {err}"
    return None


def choose_backend(name: str):
    """``(namespace, device, description)`` for ``--backend``: auto is CuPy when usable, else NumPy; torch runs
    on CUDA when torch sees a GPU, else on the CPU. A backend that cannot run is one line (SystemExit)."""
    if name == "auto":
        name = "numpy" if cupy_problem() else "cupy"
    elif name == "cupy" and (problem := cupy_problem()):
        raise SystemExit(f"--backend cupy: {problem}")
    device = None
    if name == "torch":
        try:
            import torch
        except ImportError:
            raise SystemExit(
                "--backend torch: torch is not installed; install its CPU build with: "
                "pip install torch --index-url https://download.pytorch.org/whl/cpu"
            ) from None
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    xp = load_namespace(name)
    description = name if device is None else f"{name} ({device})"
    return xp, device, description


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` with each flag's default once, as ``(default: X)``, lists as typed (``512 256``).

    A flag whose default is None says in its help what happens without it; a switch shows no default.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default is None or isinstance(default, bool) or default is argparse.SUPPRESS or "(default" in text:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


def new_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the first line of ``doc`` and whose epilog is the rest (the usage examples)."""
    first, _, rest = doc.strip().partition("\n")
    return argparse.ArgumentParser(description=first, epilog=rest.strip("\n") or None, formatter_class=HelpFormatter)


def add_common_flags(p: argparse.ArgumentParser, *, num_train: int | None = None) -> argparse.ArgumentParser:
    """Flags of every example: backend, data set, seed, dtype, verbosity."""
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: cupy with a usable CUDA GPU, else numpy")
    p.add_argument("--data", choices=("digits", "cifar10"), default="digits", help="data set")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="CIFAR-10 folder (cifar-10-batches-py) (default: where get_CIFAR10_data() looks, starting with "
        "$XPNET_CIFAR10_DIR)",
    )
    p.add_argument(
        "--num-train",
        type=int,
        default=num_train,
        metavar="N",
        help="use only the first N training images" + (" (default: all)" if num_train is None else ""),
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="of the params and data")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights and the minibatch sampler")
    p.add_argument("--quiet", action="store_true", help="no per-iteration prints and no progress bar")
    return p


def make_parser(doc: str, *, epochs: int, batch_size: int, lr: float, lr_decay: float, reg: float):
    """The flags of a training example; its defaults are the example's tuned settings."""
    p = add_common_flags(new_parser(doc))
    p.add_argument("--epochs", type=int, default=epochs, help="epochs to train in total")
    p.add_argument("--batch-size", type=int, default=batch_size, help="images per minibatch")
    p.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    p.add_argument("--lr-decay", type=float, default=lr_decay, help="learning rate factor after each epoch")
    p.add_argument("--reg", type=float, default=reg, help="L2 regularization strength")
    p.add_argument(
        "--checkpoint-dir", metavar="DIR", help="save a checkpoint there after every epoch (default: none saved)"
    )
    p.add_argument(
        "--resume",
        metavar="PATH",
        help="continue training from a checkpoint file, with its learning rate and random state; --epochs is the "
        "total, at least the checkpoint's epoch (default: start afresh)",
    )
    p.add_argument("--plot", metavar="PATH", help="write the loss and accuracy curves to this PNG (default: none)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="run each training step compiled: torch.compile with --backend torch, jax.jit with --backend jax "
        "(other backends have no compiler)",
    )
    return p


# A resumed run takes these from the checkpoint (that is what makes it repeat the uninterrupted run).
_FROM_CHECKPOINT = ("lr", "seed")


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """The parsed flags; with ``--resume``, giving a flag the checkpoint overrides is an error, not ignored, and so is
    an ``--epochs`` below the checkpoint's epoch (it would train nothing): both before any data is loaded."""
    args = parser.parse_args(argv)
    if getattr(args, "resume", None) is not None:
        # Parsed again over placeholders, which argparse keeps where no flag was typed (a default it would not tell
        # apart from a typed value equal to it).
        unset = object()
        typed = parser.parse_args(argv, argparse.Namespace(**dict.fromkeys(_FROM_CHECKPOINT, unset)))
        given = [f"--{dest}" for dest in _FROM_CHECKPOINT if getattr(typed, dest) is not unset]
        if given:
            parser.error(
                f"{' and '.join(given)} cannot be used with --resume: the learning rate and the random state come "
                "from the checkpoint, so the resumed run repeats the interrupted one"
            )
        try:
            done = checkpoint_epoch(args.resume)
        except (OSError, ValueError) as err:
            parser.error(f"--resume: {err.strerror if isinstance(err, OSError) and err.strerror else err}")
        if args.epochs < done:
            # Most likely meant as "this many more": say what that would be.
            parser.error(
                f"--epochs {args.epochs} is below the checkpoint's epoch {done}: --epochs is the total, the "
                f"checkpoint's {done} epochs included; to train {args.epochs} more, use --epochs {done + args.epochs}"
            )
    return args


def load_data(args) -> dict:
    """The data dict (NumPy) named by ``--data``; ``--num-train`` keeps the first that many training images."""
    if args.data == "cifar10":
        try:
            data = get_CIFAR10_data(cifar10_dir=args.data_dir, dtype=np.float32)
        except FileNotFoundError as err:
            raise SystemExit(
                f"--data cifar10: {err}\nIn this example, --data-dir DIR is the cifar10_dir argument."
            ) from None
    else:
        data = get_digits_data()
    if args.num_train is not None:
        if not 1 <= args.num_train <= data["X_train"].shape[0]:
            raise SystemExit(f"--num-train must be in [1, {data['X_train'].shape[0]}], got {args.num_train}")
        data["X_train"], data["y_train"] = data["X_train"][: args.num_train], data["y_train"][: args.num_train]
    return data


def describe(data: dict) -> str:
    return ", ".join(f"{key} {tuple(data[key].shape)}" for key in ("X_train", "X_val", "X_test"))


class ExampleSolver(Solver):
    """The Solver, printing each checkpoint's path as it is written, so ``--resume PATH`` is one copy away."""

    def save_checkpoint(self, path) -> None:
        super().save_checkpoint(path)
        tqdm.write(f"checkpoint written to {path}")  # tqdm.write: a progress bar on the terminal stays whole


def train(model, data: dict, args, *, name: str) -> Solver:
    """Train ``model`` with Adam as the flags say (checkpoints, resume, plot), printing the time per epoch."""
    checkpoint_name = None
    if args.checkpoint_dir:
        try:
            os.makedirs(args.checkpoint_dir, exist_ok=True)
        except OSError as err:
            raise SystemExit(f"--checkpoint-dir {args.checkpoint_dir}: {err.strerror or err}") from None
        checkpoint_name = os.path.join(args.checkpoint_dir, name)
    try:
        solver = ExampleSolver(
            model,
            data,
            update_rule="adam",
            optim_config={"learning_rate": args.lr},
            lr_decay=args.lr_decay,
            batch_size=args.batch_size,
            num_epochs=args.epochs,
            num_train_samples=1000,
            print_every=max(data["X_train"].shape[0] // args.batch_size, 1),
            verbose=not args.quiet,
            checkpoint_name=checkpoint_name,
            seed=args.seed,
            resume_from=args.resume,
            compile=getattr(args, "compile", False),
        )
    except (OSError, ValueError) as err:
        if getattr(args, "compile", False) and "compile=True" in str(err):
            raise SystemExit(f"--compile: {err}") from None
        if args.resume is None:
            raise
        # A missing file, or a checkpoint of another net, batch size or update rule: the message names it.
        raise SystemExit(f"--resume: {err.strerror if isinstance(err, OSError) and err.strerror else err}") from None
    if args.resume is not None and solver.epoch == args.epochs:
        # The run is complete: rerunning its command gives its results again, from the checkpoint's best params.
        print(
            f"resuming from {args.resume} at epoch {solver.epoch}, the --epochs {args.epochs} asked for in total: "
            f"nothing to train; the results below are the checkpoint's (--epochs {args.epochs + 1} or more trains on)"
        )
    elif args.resume is not None:
        lr = float(next(iter(solver.optim_configs.values()))["learning_rate"])
        print(
            f"resuming from {args.resume} at epoch {solver.epoch}: learning rate {lr:.3g} and random state come "
            f"from the checkpoint; training runs to epoch {args.epochs}"
        )
    first_epoch = solver.epoch
    begin = time.perf_counter()
    solver.train()
    sync(next(iter(model.params.values())))
    seconds = time.perf_counter() - begin
    epochs_run = solver.epoch - first_epoch
    if epochs_run:
        plural = "" if epochs_run == 1 else "s"
        print(f"trained {epochs_run} epoch{plural} in {seconds:.1f} s: {seconds / epochs_run:.2f} s per epoch")
    print(f"best validation accuracy: {solver.best_val_acc:.4f}")
    if args.plot:
        print(f"curves written to {plot_solver_history(solver, args.plot, title=name)}")
    return solver


def report_test_accuracy(solver: Solver, data: dict) -> float:
    """Print the last line of a training example, ``test accuracy: 0.XXXX`` (scripts and tests parse it)."""
    test_acc = solver.check_accuracy(data["X_test"], data["y_test"])
    print(f"test accuracy: {test_acc:.4f}")
    return test_acc


def start(args):
    """Seed NumPy's global state (model weights are drawn from it), pick the backend, load the data."""
    np.random.seed(args.seed)
    xp, device, description = choose_backend(args.backend)
    data = load_data(args)
    print(f"backend: {description}; data: {args.data}: {describe(data)}")
    return xp, device, data


def add_sweep_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Where a sweep's trials run (:mod:`xpnet.sweep`): local worker processes or a running Dask cluster."""
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the local Dask cluster; 0 trains in this process (default: one per core)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask scheduler, e.g. tcp://host:8786 (default: a local cluster for this run)",
    )
    return p


@contextlib.contextmanager
def sweep_client(args):
    """What ``sweep(client=...)`` gets from ``--workers`` / ``--scheduler``; a local cluster starts once, here."""
    if args.scheduler is not None:
        if args.workers is not None:
            raise SystemExit("--workers is for the local cluster; with --scheduler the cluster has its own workers")
        yield args.scheduler
    elif args.workers == 0:
        yield "sequential"
    else:
        if args.workers is not None and args.workers < 0:
            raise SystemExit(f"--workers must be >= 0, got {args.workers}")
        from xpnet.sweep import local_client
        from xpnet.sweep._cluster import import_distributed

        try:
            import_distributed("--workers")
        except ImportError as err:
            raise SystemExit(f"{err}; or run with --workers 0") from None
        with local_client(n_workers=args.workers) as client:
            yield client
