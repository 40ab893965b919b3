"""What the training examples share: command-line flags, backend choice, data loading and a timed Solver run.

Import it before NumPy: it sets the CPU thread defaults, which BLAS and OpenMP read when they load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# The digits nets are too small to gain from several CPU threads, and idle pool threads that spin made runs ten
# times slower whenever other processes shared the cores. Set these variables yourself to use more threads (worth
# it for CIFAR-10 on the CPU).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

# Running `python examples/train_fc.py` from a source checkout works without installing xpnet.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xpnet._backend import get_namespace, sync  # noqa: E402
from xpnet.data_utils import get_CIFAR10_data, get_digits_data  # noqa: E402
from xpnet.solver import Solver  # noqa: E402
from xpnet.vis_utils import plot_solver_history  # noqa: E402

BACKENDS = ("auto", "numpy", "cupy", "torch")


def cupy_usable() -> bool:
    """True if CuPy imports and can run a kernel on a CUDA device."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return False
        return float(cupy.arange(3).sum()) == 3.0
    except Exception:  # not installed, no driver, no device: all mean "use the CPU"
        return False


def choose_backend(name: str):
    """``(namespace, device, description)`` for ``--backend``: auto is CuPy when usable, else NumPy; torch runs
    on CUDA when torch sees a GPU, else on the CPU."""
    if name == "auto":
        name = "cupy" if cupy_usable() else "numpy"
    if name == "cupy" and not cupy_usable():
        raise SystemExit("--backend cupy: CuPy is not installed or no CUDA device is usable")
    xp = get_namespace(name)
    device = None
    if name == "torch":
        import torch

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    description = name if device is None else f"{name} ({device})"
    return xp, device, description


def add_common_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags of every example: backend, data set, seed, dtype, verbosity."""
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: cupy with a CUDA GPU, else numpy")
    p.add_argument("--data", choices=("digits", "cifar10"), default="digits")
    p.add_argument("--data-dir", help="CIFAR-10 folder (cifar-10-batches-py); default $XPNET_CIFAR10_DIR")
    p.add_argument("--num-train", type=int, help="use only this many training images (default: all)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights and the minibatch sampler")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-iteration prints")
    return p


def make_parser(description: str, *, epochs: int, batch_size: int, lr: float, lr_decay: float):
    """The flags of a training example; its defaults are the example's tuned settings."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_flags(p)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    p.add_argument("--lr-decay", type=float, default=lr_decay, help="learning rate factor after each epoch")
    p.add_argument("--reg", type=float, default=None, help="L2 regularization (default: the example's)")
    p.add_argument("--checkpoint-dir", help="save a checkpoint there after every epoch")
    p.add_argument("--resume", metavar="PATH", help="continue training from a checkpoint file")
    p.add_argument("--plot", metavar="PATH", help="write the loss and accuracy curves to this PNG")
    return p


def load_data(args) -> dict:
    """The data dict (NumPy) named by ``--data``; ``--num-train`` keeps the first that many training images."""
    if args.data == "cifar10":
        try:
            data = get_CIFAR10_data(cifar10_dir=args.data_dir, dtype=np.float32)
        except FileNotFoundError as err:
            raise SystemExit(f"--data cifar10: {err} (here: --data-dir)") from None
    else:
        data = get_digits_data()
    if args.num_train is not None:
        if not 1 <= args.num_train <= data["X_train"].shape[0]:
            raise SystemExit(f"--num-train must be in [1, {data['X_train'].shape[0]}], got {args.num_train}")
        data["X_train"], data["y_train"] = data["X_train"][: args.num_train], data["y_train"][: args.num_train]
    return data


def describe(data: dict) -> str:
    return ", ".join(f"{key} {tuple(data[key].shape)}" for key in ("X_train", "X_val", "X_test"))


def train(model, data: dict, args, *, name: str) -> Solver:
    """Train ``model`` with Adam as the flags say (checkpoints, resume, plot), printing the time per epoch."""
    checkpoint_name = None
    if args.checkpoint_dir:
        os.makedirs(args.checkpoint_dir, exist_ok=True)
        checkpoint_name = os.path.join(args.checkpoint_dir, name)
    solver = Solver(
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
